"""Explain: the picture, what the model predicts, and where it looked."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from app import compute, sidebar, widgets
from interpret import METHODS, Explanation, explain
from interpret.images import encode_png
from interpret.overlay import overlay
from models import ModelHandle


@st.cache_data(max_entries=64, show_spinner=False)
def top_predictions(model_key: str, image_bytes: bytes, _model: ModelHandle, _image: np.ndarray, k: int = 5):
    return compute.run(_model, compute.top_k, image=_image, k=k)


@st.cache_data(max_entries=64, show_spinner=False)
def explanation(
    model_key: str, image_bytes: bytes, method: str, target: int, layer: str | None, params: tuple, _model, _image
) -> Explanation:
    return compute.run(_model, explain, image=_image, method=method, target=target, layer=layer, **dict(params))


def prediction_chart(top: list[tuple[int, str, float]]) -> go.Figure:
    names = [name for _, name, _ in top][::-1]
    probs = [p for _, _, p in top][::-1]
    fig = go.Figure(go.Bar(x=probs, y=names, orientation="h", text=[f"{p:.1%}" for p in probs], textposition="auto"))
    fig.update_layout(height=260, margin=dict(l=0, r=0, t=10, b=0), xaxis=dict(range=[0, 1], title="probability"))
    return fig


choice = sidebar.current()
st.header("Explain a prediction")
if choice.model is None or choice.image is None:
    st.info("Pick a model and a picture in the sidebar.")
    st.stop()

m, image = choice.model, choice.image
top = top_predictions(choice.model_key, choice.image_bytes, m, image)

left, right = st.columns([1, 1])
with left:
    st.subheader("Top-5 predictions")
    st.plotly_chart(prediction_chart(top), width="stretch")
with right:
    st.subheader("Settings")
    classes = list(range(m.num_classes))
    target = st.selectbox(
        "Target class",
        classes,
        index=top[0][0],
        format_func=lambda i: f"{i}: {m.class_names[i]}",
        key="explain:target",
    )
    method_name = st.selectbox("Method", list(METHODS), format_func=lambda k: METHODS[k].title, key="explain:method")
    method = METHODS[method_name]
    layer = None
    if method.uses_layer:
        layer = st.selectbox("Layer", m.conv_layers, index=len(m.conv_layers) - 1, key=f"explain:layer:{choice.model_key}")
    params = widgets.method_params(method, "explain")
    alpha, cmap = widgets.overlay_controls("explain")

try:
    with st.spinner(f"Computing {method.title}..."):
        e = explanation(choice.model_key, choice.image_bytes, method_name, target, layer, tuple(sorted(params.items())), m, image)
except ValueError as exc:
    st.error(str(exc))
    st.stop()

picture = overlay(image, e.heatmap, alpha=alpha, cmap=cmap, signed=method.signed)
col1, col2 = st.columns(2)
col1.image(image, caption=f"Input: {choice.image_label}", width="stretch", clamp=True)
col2.image(picture, caption=f"{method.title} for '{e.target_name}'" + (f" at {e.layer}" if e.layer else ""), width="stretch")
st.caption(f"{method.paper}. {method.summary}")
st.download_button(
    "Download overlay (PNG)",
    encode_png(picture),
    file_name=f"{method_name}_{e.target_name.replace('/', '-')}.png",
    mime="image/png",
)
