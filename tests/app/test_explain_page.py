"""AppTest runs of the Explain page on the bundled model, and the job-superseding logic."""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest

from app import gallery
from app.widgets import DIVERGING, SEQUENTIAL, applies_to
from interpret import METHODS, Cancelled, Progress, explain
from models import BUNDLED, load
from serving import superseding

# A gallery entry other than the default one, so choosing it changes the picture.
SAMPLE = [e for e in gallery.samples_for(1) if e.startswith("fashion: ")][1]


@pytest.fixture(scope="module")
def bundled():
    return load(BUNDLED)


def overlay_captions(at) -> list[str]:
    return [c for img in at.main.get("image") for c in img.captions if " for '" in c]


def test_explain_page_draws_prediction_and_overlay(app_test, bundled):
    at = app_test()
    at.run()
    assert not at.exception
    assert not at.error
    at.selectbox(key="sample:gray").set_value(SAMPLE).run()
    assert not at.exception
    assert not at.error

    picture, _ = gallery.load_sample(SAMPLE)
    top1 = bundled.top_k(picture, 1)[0][0]
    target = next(s for s in at.selectbox if s.key.startswith("explain:target:"))
    assert target.value == top1  # defaults to the model's top-1 class
    assert at.selectbox(key="explain:method").value == "gradcam"  # the default: fast and familiar
    layer = at.selectbox(key=f"explain:layer:{BUNDLED}")
    assert layer.value == bundled.last_conv_layer
    assert layer.options == bundled.conv_layers

    captions = overlay_captions(at)
    assert len(captions) == 1 and bundled.class_names[top1] in captions[0]
    assert any(f"Input: {SAMPLE.partition(': ')[2]}" in c for img in at.main.get("image") for c in img.captions)
    (table,) = [md.value for md in at.main.get("markdown") if md.value.startswith("| class | probability |")]
    escaped = re.sub(r"([\\`*_{}\[\]<>()#+\-.!|:~$])", r"\\\1", bundled.class_names[top1])  # as Markdown shows it
    assert f"**:red[{escaped}]**" in table  # the class being explained is highlighted
    assert len(table.splitlines()) == 2 + 5  # header, alignment, the top-5
    assert {b.label for b in at.get("download_button")} == {"Download overlay (PNG)", "Download heatmap (NumPy .npy)"}


def test_target_and_layer_choices_reach_the_explanation(app_test, bundled):
    at = app_test()
    at.run()
    at.selectbox(key="sample:gray").set_value(SAMPLE).run()
    target = next(s for s in at.selectbox if s.key.startswith("explain:target:"))
    target.set_value(3).run()
    first_conv = bundled.conv_layers[0]
    at.selectbox(key=f"explain:layer:{BUNDLED}").set_value(first_conv).run()
    assert not at.exception and not at.error
    (caption,) = overlay_captions(at)
    assert f"'{bundled.class_names[3]}'" in caption and first_conv in caption
    assert not at.main.get("plotly_chart")  # the top-5 is a light Markdown table, not a chart


@pytest.mark.parametrize("name", list(METHODS))
def test_every_registered_method_runs_with_its_own_parameters(app_test, name):
    method = METHODS[name]
    at = app_test()
    at.run()
    at.selectbox(key="explain:method").set_value(name).run()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    assert overlay_captions(at) and method.title in overlay_captions(at)[0]
    # one widget per registry parameter, keyed per method so values don't leak between methods
    keys = {w.key for kind in ("number_input", "slider", "selectbox", "checkbox") for w in at.get(kind)}
    expected = {f"explain:{name}:{p.name}" for p in method.params if applies_to(p, method.defaults, method)}
    assert {k for k in keys if k and k.startswith("explain:") and k.split(":")[1] in METHODS} == expected
    # layer picker only for methods that use a layer
    assert any(s.key == f"explain:layer:{BUNDLED}" for s in at.selectbox) == method.uses_layer
    cmap = next(s for s in at.selectbox if s.key.startswith("explain:cmap:"))
    assert set(cmap.options) == set(DIVERGING if method.signed else SEQUENTIAL)


def test_each_run_supersedes_the_previous_job(app_test):
    at = app_test()
    at.run()
    first = at.session_state["explain:job"]
    assert isinstance(first, threading.Event) and not first.is_set()
    at.slider(key="explain:alpha").set_value(0.8).run()
    second = at.session_state["explain:job"]
    assert first.is_set()  # the earlier run's job is told to stop
    assert second is not first and not second.is_set()


def test_supersede_sets_the_previous_event_only():
    state: dict = {}
    a = superseding.supersede(state, "job")
    other = superseding.supersede(state, "other-page")
    b = superseding.supersede(state, "job")
    assert a.is_set() and not b.is_set() and not other.is_set()
    assert state["job"] is b


def test_progress_with_a_set_event_raises_cancelled():
    event = threading.Event()
    seen: list[float] = []
    progress = Progress(lambda f, _m: seen.append(f), event)
    progress(0.5, "half")
    event.set()
    with pytest.raises(Cancelled):
        progress(0.6, "more")
    assert seen == [0.5]


def test_a_superseded_explanation_stops_with_cancelled(tiny, handle_of):
    m = handle_of(tiny.conv_softmax())
    picture = np.random.default_rng(0).integers(0, 255, (12, 12, 3), dtype=np.uint8)
    event = threading.Event()
    event.set()
    shown: list[tuple[float, str]] = []
    with pytest.raises(Cancelled):
        explain(
            m, picture, method="saliency", progress=superseding.progress_for(lambda f, t: shown.append((f, t)), event)
        )
    assert shown == []  # nothing was reported: it stopped before the first batch


def test_progress_reaches_the_bar_throttled_and_finishes_at_one(tiny, handle_of):
    m = handle_of(tiny.conv_softmax())
    picture = np.random.default_rng(0).integers(0, 255, (12, 12, 3), dtype=np.uint8)
    shown: list[float] = []
    explain(
        m,
        picture,
        method="gradcam",
        progress=superseding.progress_for(lambda f, _t: shown.append(f), threading.Event()),
    )
    assert shown[0] == 0.0 and shown[-1] == 1.0
    throttled = superseding.Throttled(lambda f, _t: shown.append(f), step=0.25)
    shown.clear()
    for i in range(11):
        throttled(i / 10)
    assert shown == [0.0, 0.3, 0.6, 0.9, 1.0]


@pytest.mark.skipif("lime" not in METHODS, reason="LIME is not registered")
def test_lime_shows_the_chosen_segmenters_parameters_and_its_superpixels(app_test):
    at = app_test()
    at.run()
    at.selectbox(key="explain:method").set_value("lime").run()
    keys = {w.key for kind in ("number_input", "slider") for w in at.get(kind)}
    assert "explain:lime:kernel_size" in keys and "explain:lime:n_segments" not in keys  # quickshift by default
    at.selectbox(key="explain:lime:segmenter").set_value("slic").run()
    assert not at.exception and not at.error
    keys = {w.key for kind in ("number_input", "slider") for w in at.get(kind)}
    assert "explain:lime:n_segments" in keys and "explain:lime:kernel_size" not in keys
    assert "LIME" in overlay_captions(at)[0]


def test_parameters_that_belong_to_another_choice_are_hidden():
    from interpret.explanation import MethodResult
    from interpret.registry import Method, Param

    algo = Param("algo", "choice", "a", choices=("a", "b", "c"))
    only_a = Param("size", "int", 3, "a: patch size.")
    b_and_c = Param("scale", "float", 1.0, "b and c: how coarse.")
    general = Param("seed", "int", 0, "Random seed: the same seed gives the same map.")
    m = Method(
        "demo",
        "Demo",
        lambda *a, **k: MethodResult(np.zeros((2, 2))),
        "Nobody 2024",
        "perturbation",
        params=(algo, only_a, b_and_c, general),
    )
    shown = {c: [p.name for p in m.params if applies_to(p, {"algo": c}, m)] for c in algo.choices}
    assert shown == {"a": ["algo", "size", "seed"], "b": ["algo", "scale", "seed"], "c": ["algo", "scale", "seed"]}


def test_reruns_keep_the_compiled_functions_and_skip_the_forced_full_gc(monkeypatch):
    """Streamlit's clean-up after each run would clear the Keras session (and TensorFlow's kernel cache)."""
    import keras
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from streamlit import config
    from streamlit.runtime.scriptrunner import script_runner

    from app import widgets

    monkeypatch.setattr(script_runner, "_clean_problem_modules", script_runner._clean_problem_modules)  # undone after
    cleared: list[int] = []
    monkeypatch.setattr(keras.backend, "clear_session", lambda *a, **k: cleared.append(1))
    widgets.keep_compiled_functions()
    patched = script_runner._clean_problem_modules
    widgets.keep_compiled_functions()  # idempotent
    assert script_runner._clean_problem_modules is patched
    plt.figure()
    script_runner._clean_problem_modules()  # what Streamlit calls after every run
    assert cleared == [] and plt.get_fignums() == []  # the Keras session is kept; figures are still closed
    assert config.get_option("runner.postScriptGC") is False


def test_rerun_pending_reads_streamlits_waiting_request(monkeypatch):
    """A long job in the Explain fragment stops when a newer choice waits (fragments are not interrupted)."""
    from types import SimpleNamespace

    from streamlit.runtime.scriptrunner_utils import script_run_context
    from streamlit.runtime.scriptrunner_utils.script_requests import ScriptRequestType

    from app import widgets

    def ctx_with(state):
        return lambda suppress_warning=False: SimpleNamespace(script_requests=SimpleNamespace(_state=state))

    monkeypatch.setattr(script_run_context, "get_script_run_ctx", ctx_with(ScriptRequestType.CONTINUE))
    assert not widgets.rerun_pending()
    monkeypatch.setattr(script_run_context, "get_script_run_ctx", ctx_with(ScriptRequestType.RERUN))
    assert widgets.rerun_pending()
    monkeypatch.setattr(script_run_context, "get_script_run_ctx", lambda suppress_warning=False: None)
    assert not widgets.rerun_pending()  # outside a script run
