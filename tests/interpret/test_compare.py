"""The compare grid: shared passes give exactly what ``explain`` gives, exports hold everything."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from interpret import METHODS, explain
from interpret.compare import CompareGrid, Panel, compare, grid_zip
from interpret.explanation import MethodResult
from interpret.progress import Cancelled, Progress
from interpret.registry import Method, Param, SharedPass
from interpret.render import grid_png, panel_scales

SHARED = [name for name, method in METHODS.items() if method.shared_pass is not None]


@pytest.fixture(scope="module")
def nested(tiny, handle_of):
    model, _, _ = tiny.nested_sequential(classes=4)
    return handle_of(model, class_names=["cat", "dog", "fox", "owl"])


def test_each_panel_equals_explain(nested, rng):
    image = rng.integers(0, 256, (20, 16, 3), dtype=np.uint8)  # not the model's size: maps come back at 20x16
    others = [name for name in METHODS if name not in SHARED and name != "lime"][:1]
    methods = SHARED + others
    grid = compare(nested, image, methods, targets=[2, 0], layer="base/conv1", params={"occlusion": {"patch": 3}})
    assert grid.targets == [2, 0] and grid.target_names == ["fox", "cat"]
    assert len(grid.panels) == len(methods) * 2
    for p in grid.panels:
        kwargs = {"patch": 3} if p.method == "occlusion" else {}
        e = explain(nested, image, p.method, target=p.target, layer="base/conv1", **kwargs)
        assert p.heatmap.shape == (20, 16)
        np.testing.assert_allclose(p.heatmap, e.heatmap, rtol=1e-4, atol=1e-6 * (np.abs(e.heatmap).max() + 1e-12))
        assert p.score == pytest.approx(e.score, rel=1e-5)
    assert grid.panel("gradcam", 2).shared.startswith("one batched pass")
    assert grid.panel("occlusion", 0).shared.startswith("one set of ")


def test_the_gradient_family_and_occlusion_each_make_one_run_for_all_classes(nested, rng, monkeypatch):
    import interpret.guided_gradcam as gg
    import interpret.occlusion as occ

    calls = {"family": [], "occlusion": 0}
    family, occluded = gg.guided_and_layer_gradients, occ.occluded_logits

    def family_spy(m, x, layer, targets):
        calls["family"].append(len(x))
        return family(m, x, layer, targets)

    def occluded_spy(*args, **kwargs):
        calls["occlusion"] += 1
        return occluded(*args, **kwargs)

    monkeypatch.setattr(gg, "guided_and_layer_gradients", family_spy)
    monkeypatch.setattr(occ, "occluded_logits", occluded_spy)
    image = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    methods = ["guided_backprop", "gradcam", "guided_gradcam", "occlusion"]  # the lecture's figure
    grid = compare(nested, image, methods, targets=[0, 1, 3], params={"occlusion": {"patch": 4}})
    assert calls == {"family": [3], "occlusion": 1}  # one batched call, one row per class; one set of copies
    assert len(grid.panels) == 12
    assert grid.panel("guided_gradcam", 3).shared == "one batched pass for 3 classes"
    assert grid.panel("occlusion", 1).shared == "one set of 10 forward passes for 3 classes"  # 3x3 patches + 1


def test_compare_reads_the_registry_not_method_names(nested, rng, monkeypatch):
    """A method registered elsewhere with a shared pass gets one run for all classes; one without, explain per class."""
    runs, calls = [], []

    def shared_run(m, x, targets, layer, params, progress):
        runs.append((list(targets), layer, dict(params)))
        progress(0.5, "half way")
        return np.stack([np.full((3, 3), t + params["level"], np.float32) for t in targets])

    def fn(m, x, target, level: float = 1.0, **_):
        calls.append(target)
        return MethodResult(np.full((3, 3), target + level, np.float32))

    shared = Method(
        "shared_demo",
        "Shared demo",
        fn,
        "Nobody 2024",
        "perturbation",
        params=(Param("level", "float", min=0.0, max=9.0),),
        passes=lambda params, shape: 4,
        shared_pass=SharedPass("demo", shared_run, lambda out, i: out[i], needs_layer=True),
    )
    plain = Method("plain_demo", "Plain demo", fn, "Nobody 2024", "gradient", params=(Param("level", "float"),))
    monkeypatch.setitem(METHODS, "shared_demo", shared)
    monkeypatch.setitem(METHODS, "plain_demo", plain)
    seen = []
    image = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    grid = compare(
        nested,
        image,
        ["shared_demo", "plain_demo"],
        targets=[1, 2],
        params={"shared_demo": {"level": 2.0}},
        progress=lambda f, msg: seen.append((f, msg)),
    )
    assert runs == [([1, 2], nested.last_conv_layer, {"level": 2.0})]
    assert calls == [1, 2]
    np.testing.assert_allclose(grid.panel("shared_demo", 2).heatmap, 4.0)
    np.testing.assert_allclose(grid.panel("plain_demo", 1).heatmap, 2.0)
    assert grid.panel("shared_demo", 1).shared == "one set of 4 forward passes for 2 classes"
    assert grid.panel("shared_demo", 1).layer == nested.last_conv_layer and grid.panel("plain_demo", 1).layer is None
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    # progress is weighted by passes: the shared run (4 passes) is 4/6 of the work, the plain method's two classes 2/6
    assert (pytest.approx(0.5 * 4 / 6), "half way (Shared demo, 2 classes)") in seen


def test_compare_stops_when_cancelled(nested, rng):
    import threading

    cancel = threading.Event()

    def report(fraction, message):
        if fraction > 0:
            cancel.set()

    image = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    with pytest.raises(Cancelled):
        compare(nested, image, ["saliency", "occlusion"], targets=[0, 1], progress=Progress(report, cancel))


def test_default_targets_are_the_top_two(nested, rng):
    image = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    grid = compare(nested, image, ["gradcam"])
    logits = nested.logits(image)[0]
    assert grid.targets == list(np.argsort(-logits)[:2])


def test_bad_requests(nested, rng):
    image = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="at least one method"):
        compare(nested, image, [])
    with pytest.raises(ValueError, match="Unknown method nope"):
        compare(nested, image, ["nope"])
    with pytest.raises(ValueError, match="out of range"):
        compare(nested, image, ["gradcam"], targets=[9])


def small_grid() -> CompareGrid:
    def panel(method, target, heat, signed):
        return Panel(method, method.title(), target, f"c{target}", np.array(heat, np.float32), signed, {"k": 1})

    return CompareGrid(
        ["a", "b"],
        [0, 1],
        ["c0", "c1"],
        [
            panel("a", 0, [[0, 2]], False),
            panel("a", 1, [[0, 4]], False),
            panel("b", 0, [[-3, 1]], True),
            panel("b", 1, [[0, 1]], True),
        ],
    )


def test_shared_scale_is_per_method():
    grid = small_grid()
    assert set(panel_scales(grid, shared=False).values()) == {None}
    shared = panel_scales(grid, shared=True)
    assert shared[("a", 0)] == shared[("a", 1)] == 4.0
    assert shared[("b", 0)] == shared[("b", 1)] == 3.0  # signed: largest magnitude


def test_zip_holds_every_heatmap_and_its_parameters():
    grid = small_grid()
    data = grid_zip(grid, model_name="tiny", image_label="cat.png")
    z = zipfile.ZipFile(io.BytesIO(data))
    record = json.loads(z.read("grid.json"))
    assert record["model"] == "tiny" and record["targets"] == [0, 1]
    assert len(record["panels"]) == 4
    for entry in record["panels"]:
        heat = np.load(io.BytesIO(z.read(entry["file"])))["heatmap"]
        np.testing.assert_array_equal(heat, grid.panel(entry["method"], entry["target"]).heatmap)
        assert entry["params"] == {"k": 1}


def test_png_has_a_row_per_method(nested, rng):
    image = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    grid = compare(nested, image, ["gradcam", "saliency", "guided_backprop"], targets=[0, 1])
    png = Image.open(io.BytesIO(grid_png(grid, image, shared=True, dpi=50)))
    width, height = png.size
    assert png.format == "PNG"
    assert height == pytest.approx(3 * 2.6 * 50, abs=2) and width == pytest.approx(3 * 2.6 * 50, abs=2)
