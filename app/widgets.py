"""Widgets shared by pages: method parameters from the registry, overlay controls; and light reruns."""

from __future__ import annotations

import re
import sys
from typing import Any

import streamlit as st

from interpret.registry import Method, Param
from interpret.render import COLORMAPS

# Signed maps (occlusion, integrated gradients, LIME) keep zero in the middle of a diverging map.
DIVERGING = ("coolwarm", "bwr", "seismic", "RdBu_r", "PiYG")
SEQUENTIAL = tuple(c for c in COLORMAPS if c not in DIVERGING)


def keep_compiled_functions() -> None:
    """Take two costs out of every script and fragment run that Streamlit adds by default (idempotent).

    Both were measured on the Explain page (MobileNetV2 Grad-CAM, 2-core CPU), where a click
    on a new target computes for about 0.03 s:

    - Streamlit (1.67, ``script_runner._clean_problem_modules``) calls
      ``keras.backend.clear_session()`` after every run, which empties TensorFlow's kernel
      cache: the next call of every cached ``tf.function`` is instantiated and graph-optimised
      again, about 0.3 s for MobileNetV2's Grad-CAM. The app keeps its models and compiled
      functions across runs on purpose (``st.cache_resource``, ``ModelHandle.cached``) and
      builds no Keras model per run, so that clean-up only costs. Matplotlib figures are
      still closed.
    - ``runner.postScriptGC`` forces a full ``gc.collect(2)`` after every run. With TensorFlow
      and a few models loaded that walks half a million objects (0.2-0.5 s) holding the GIL,
      so the server cannot even send the new heatmap meanwhile. Python's own collector still
      runs. Turned off only while it has its default value: a server that sets it keeps it.
    """
    from streamlit import config

    if config.get_where_defined("runner.postScriptGC") == "<default>":
        config.set_option("runner.postScriptGC", False, where_defined="app/widgets.py: keep_compiled_functions")
    try:
        from streamlit.runtime.scriptrunner import script_runner
    except ImportError:  # another Streamlit layout: nothing to change
        return
    clean = getattr(script_runner, "_clean_problem_modules", None)
    if clean is None or getattr(clean, "keeps_keras_session", False):
        return

    def close_figures() -> None:
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None:
            plt.close("all")

    close_figures.keeps_keras_session = True  # type: ignore[attr-defined]
    script_runner._clean_problem_modules = close_figures


def rerun_pending() -> bool:
    """Whether a newer run is waiting: the person changed a choice since this run began.

    A widget change inside an ``st.fragment`` does not interrupt the fragment run in
    progress (Streamlit lets it finish, to keep the elements outside it intact), so a long
    job started there would run to its end before the new choice is drawn. Long jobs check
    this between batches (in their progress callback) and stop. Reads Streamlit's pending
    request (1.67: ``ScriptRunContext.script_requests``); False where that is not there.
    """
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    requests = getattr(get_script_run_ctx(suppress_warning=True), "script_requests", None)
    state = getattr(requests, "_state", None)
    return getattr(state, "name", "") in ("RERUN", "STOP")


def label(p: Param) -> str:
    return p.name.replace("_", " ").capitalize()


def param_widget(p: Param, key: str) -> Any:
    """One widget drawn from a ``Param`` spec; its bounds are the registry's caps."""
    if p.kind == "bool":
        return st.checkbox(label(p), value=bool(p.default), help=p.help or None, key=key)
    if p.kind == "choice":
        return st.selectbox(label(p), p.choices, index=p.choices.index(p.default), help=p.help or None, key=key)
    if p.kind == "float" and p.min is not None and p.max is not None and p.max - p.min <= 1.0:
        step = float(p.step) if p.step is not None else round((p.max - p.min) / 100, 6)
        return st.slider(
            label(p), float(p.min), float(p.max), float(p.default), step=step, help=p.help or None, key=key
        )
    cast = int if p.kind == "int" else float
    return st.number_input(
        label(p),
        min_value=cast(p.min) if p.min is not None else None,
        max_value=cast(p.max) if p.max is not None else None,
        value=cast(p.default),
        step=cast(p.step) if p.step is not None else (1 if p.kind == "int" else None),
        help=p.help or None,
        key=key,
    )


def applies_to(p: Param, chosen: dict[str, Any], method: Method) -> bool:
    """Whether ``p`` matters for the choices made so far.

    A parameter whose help starts with values of an earlier choice parameter
    ("slic: ...", "slic and felzenszwalb: ...") only matters when one of them is chosen;
    hiding the others keeps LIME's panel short. Hidden parameters keep their defaults.
    """
    head, sep, _ = p.help.partition(":")
    if not sep:
        return True
    words = {w for w in re.split(r"[\s,/]+", head.strip()) if w and w not in ("and", "or")}
    for q in method.params:
        if q.kind == "choice" and q.name in chosen and words and words <= {str(c) for c in q.choices}:
            return str(chosen[q.name]) in words
    return True


def method_params(method: Method, prefix: str) -> dict[str, Any]:
    """One widget per parameter of ``method`` that applies; returns their values. Keys are per method."""
    chosen: dict[str, Any] = {}
    for p in method.params:
        if applies_to(p, chosen, method):
            chosen[p.name] = param_widget(p, f"{prefix}:{method.name}:{p.name}")
    return chosen


def overlay_controls(prefix: str, signed: bool = False) -> tuple[float, str]:
    """Opacity and colormap; a signed map is offered diverging colormaps centred on zero."""
    col1, col2 = st.columns(2)
    alpha = col1.slider("Opacity", 0.0, 1.0, 0.5, 0.05, key=f"{prefix}:alpha", help="0 shows the picture only.")
    options = DIVERGING if signed else SEQUENTIAL
    cmap = col2.selectbox(
        "Colormap",
        options,
        key=f"{prefix}:cmap:{'signed' if signed else 'unsigned'}",
        help="Red raises the class score, blue lowers it." if signed else "Bright/red marks what mattered most.",
    )
    return alpha, cmap
