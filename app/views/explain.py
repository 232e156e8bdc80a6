"""Explain: the picture, what the model predicts, and where it looked."""

from __future__ import annotations

import io
import threading

import numpy as np
import streamlit as st

from app import sidebar, widgets
from interpret import METHODS, Cancelled, Explanation, Method, explain, render
from models import ModelHandle
from serving import compute, superseding

DEFAULT_METHOD = "gradcam"  # fast, and what most students expect first


@st.cache_data(max_entries=64, ttl="2h", show_spinner=False)
def top_predictions(model_key: str, image_key: str, _model: ModelHandle, _image: np.ndarray, k: int = 5):
    return compute.run(_model, compute.top_k, image=_image, k=k)


@st.cache_data(max_entries=24, ttl="1h", show_spinner=False)
def explanation(
    model_key: str,
    image_key: str,
    method: str,
    target: int,
    layer: str | None,
    params: tuple,
    _model: ModelHandle,
    _image: np.ndarray,
    _cancel: threading.Event,
) -> Explanation:
    """One explanation, cached on the model, the picture's hash and every choice that shapes it."""
    title = METHODS[method].title
    bar = st.progress(0.0, text=f"{title}: starting...")

    def show(fraction: float, message: str) -> None:
        # A change of choice waits for this fragment run to end instead of interrupting it: stop the job.
        if widgets.rerun_pending():
            raise Cancelled("superseded by a newer choice")
        bar.progress(fraction, text=message or title)

    progress = superseding.progress_for(show, _cancel)
    result = compute.run(
        _model, explain, image=_image, method=method, target=target, layer=layer, progress=progress, **dict(params)
    )
    bar.empty()
    return result


BAR_CELLS = 20  # width of a probability bar in the top-5 table, in block characters
MARKDOWN_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_{}[]<>()#+-.!|:~$"})


def text_bar(p: float) -> str:
    """A probability as a bar of block characters, to an eighth of a cell (at least a sliver)."""
    eighths = max(1, round(min(max(p, 0.0), 1.0) * BAR_CELLS * 8))
    return "█" * (eighths // 8) + ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")[eighths % 8]


def prediction_table(top: list[tuple[int, str, float]], highlight: int) -> str:
    """The top-5 as one Markdown table with text bars, the class being explained in red.

    A light element: the plotly bar chart it replaces cost the browser more than drawing
    the new heatmap on every click (it was redrawn whenever the target changed).
    """
    rows = ["| class | probability |", "|:--|:--|"]
    for i, name, p in top:
        name, value = name.translate(MARKDOWN_SPECIAL), f"`{text_bar(p)}` {p:.1%}"
        rows.append(f"| **:red[{name}]** | :red[{value}] |" if i == highlight else f"| {name} | {value} |")
    return "\n".join(rows)


def method_label(name: str) -> str:
    return METHODS[name].title


def describe(method: Method) -> str:
    return f"{method.summary} *{method.paper}.*" if method.summary else f"*{method.paper}.*"


def heatmap_npy(e: Explanation) -> bytes:
    buf = io.BytesIO()
    np.save(buf, e.heatmap)
    return buf.getvalue()


# ---------------------------------------------------------------- the page
@st.cache_resource(max_entries=16, ttl="1h", show_spinner=False)
def shown_picture(image_key: str, _image: np.ndarray) -> tuple[np.ndarray, bytes, str]:
    """The picture at display size and its encoded bytes, made once per picture rather than on every click."""
    picture = render.display_picture(_image)
    picture.setflags(write=False)
    fmt = render.display_format(_image)
    return picture, render.encode(picture, fmt), fmt


@st.fragment
def explain_area(choice: sidebar.Choice, top: list[tuple[int, str, float]]) -> None:
    """The choices and the result. A fragment: changing the target, method, parameters, opacity or
    colormap reruns only this part, not the sidebar and the rest of the page."""
    # A new run supersedes the job the previous run started.
    cancel = superseding.supersede(st.session_state, "explain:job")
    m, image = choice.model, choice.image
    top_names = {i: p for i, _, p in top}

    settings, results = st.columns([1, 2], gap="large")
    with settings:
        st.subheader("What to explain")
        target = st.selectbox(
            "Target class",
            range(m.num_classes),
            index=top[0][0],
            format_func=lambda i: f"{m.class_names[i]} ({top_names[i]:.0%})" if i in top_names else m.class_names[i],
            key=f"explain:target:{choice.model_key}:{choice.image_key}",
            help="Defaults to the model's top-1 class. Type to search.",
        )
        names = list(METHODS)
        method_name = st.selectbox(
            "Method",
            names,
            index=names.index(DEFAULT_METHOD) if DEFAULT_METHOD in names else 0,
            format_func=method_label,
            key="explain:method",
        )
        method = METHODS[method_name]
        st.caption(describe(method))
        layer = None
        if method.uses_layer:
            if not m.conv_layers:
                st.error(f"{m.name} has no layer with a spatial (H, W, C) output, so {method.title} cannot be used.")
                return
            layer = st.selectbox(
                "Layer",
                m.conv_layers,
                index=len(m.conv_layers) - 1,  # the last conv layer
                key=f"explain:layer:{choice.model_key}",
                help="Defaults to the last convolutional layer: the most semantic, least detailed maps.",
            )
        if method.params:
            with st.expander(f"{method.title} parameters", expanded=True):
                params = widgets.method_params(method, "explain")
        else:
            params = {}

    with results:
        original, explained = st.columns(2)
        shown, shown_bytes, fmt = shown_picture(choice.image_key, image)
        original.image(shown_bytes, caption=f"Input: {choice.image_label}", width="stretch", output_format=fmt)
        with explained:
            slot = st.container()  # the progress bar while computing, then the overlay
        e: Explanation | None = None
        with slot:
            try:
                e = explanation(
                    choice.model_key,
                    choice.image_key,
                    method_name,
                    target,
                    layer,
                    tuple(sorted(params.items())),
                    m,
                    image,
                    cancel,
                )
            except Cancelled:  # a newer choice took over; that run draws its own result
                return
            except ValueError as exc:  # e.g. CAM on a model without global average pooling
                st.error(str(exc))
        if e is not None:
            alpha, cmap = widgets.overlay_controls("explain", signed=method.signed)
            picture = render.method_overlay(method, shown, e.heatmap, e.extras, alpha=alpha, cmap=cmap)
            where = f" at {e.layer}" if e.layer else ""
            slot.image(
                render.encode(picture, fmt),
                caption=f"{method.title} for '{e.target_name}'{where}",
                width="stretch",
                output_format=fmt,
            )
            if method.signed:
                st.caption(
                    "Signed map: the top end of the colormap (red in coolwarm) is evidence for the class, the bottom "
                    "end (blue) evidence against it. Strong evidence is opaque; near zero the picture shows through."
                )
            else:
                st.caption("Bright colours mark the regions that mattered most for the class score.")
            download_png, download_npy = st.columns(2)
            download_png.download_button(
                "Download overlay (PNG)",
                lambda: render.encode(picture, "PNG"),  # encoded only when the button is pressed
                file_name=f"{method_name}_{e.target_name.replace('/', '-').replace(' ', '_')}.png",
                mime="image/png",
                on_click="ignore",
                width="stretch",
            )
            download_npy.download_button(
                "Download heatmap (NumPy .npy)",
                lambda: heatmap_npy(e),
                file_name=f"{method_name}_heatmap.npy",
                mime="application/octet-stream",
                on_click="ignore",
                width="stretch",
            )
        st.subheader("Top-5 predictions")
        st.markdown(prediction_table(top, highlight=target))
        score = f"Logit of '{e.target_name}': {e.score:.3f}. " if e is not None else ""
        st.caption(f"{score}Model: {m.name}.")


widgets.keep_compiled_functions()
choice = sidebar.current()
st.header("Explain a prediction")
if not choice.ready:
    for problem in choice.problems:
        st.error(problem)
    st.info("Pick a model and a picture in the sidebar.")
    st.stop()
try:
    top = top_predictions(choice.model_key, choice.image_key, choice.model, choice.image)
except ValueError as exc:  # e.g. the server is busy, or the picture does not suit the model
    st.error(str(exc))
    st.stop()
explain_area(choice, top)
