"""Filters: the first conv layer's kernels as tiles, any other conv layer per input channel or averaged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app import sidebar, widgets
from interpret.filters import FilterBank, filter_bank, filter_layers, filter_tiles, mosaic, normalize_each
from models import ModelHandle
from serving import compute

SHOW_RGB = "Colour (RGB)"
SHOW_MEAN = "Averaged over input channels"
SHOW_CHANNEL = "One input channel"


@st.cache_data(max_entries=16, show_spinner=False)
def conv_layers_with_kernels(model_key: str, _model: ModelHandle) -> list[str]:
    return compute.run(_model, filter_layers)


@st.cache_data(max_entries=32, show_spinner="Reading the weights...")
def weights_of(model_key: str, layer: str, _model: ModelHandle) -> FilterBank:
    return compute.run(_model, filter_bank, layer=layer)


def tile_figure(tiles: np.ndarray, columns: int, rgb: bool) -> go.Figure:
    """A mosaic of filters, each normalised on its own; hovering shows the raw weights."""
    raw = mosaic(tiles, columns, gap=1)
    shown = mosaic(normalize_each(tiles), columns, gap=1)
    n = tiles.shape[0]
    index = mosaic(np.arange(n, dtype=np.float32)[:, None, None] * np.ones(tiles.shape[:3], np.float32), columns, gap=1)
    if rgb:
        text = np.vectorize(
            lambda i, r, g, b: "" if np.isnan(i) else f"filter {int(i)}<br>R {r:.4f}<br>G {g:.4f}<br>B {b:.4f}"
        )(index, raw[..., 0], raw[..., 1], raw[..., 2])
        picture = np.nan_to_num(shown, nan=1.0) * 255
        trace = go.Image(z=picture.astype(np.uint8), hovertext=text, hoverinfo="text")
    else:
        custom = np.stack([index, raw], axis=-1)
        trace = go.Heatmap(
            z=shown,
            customdata=custom,
            colorscale="gray",
            showscale=False,
            hoverongaps=False,
            hovertemplate="filter %{customdata[0]}<br>weight %{customdata[1]:.4f}<extra></extra>",
        )
    fig = go.Figure(trace)
    height = int(np.clip(900 * raw.shape[0] / raw.shape[1], 260, 1400))
    fig.update_layout(height=height, margin=dict(l=0, r=0, t=10, b=0))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x")
    return fig


def histogram(bank: FilterBank) -> go.Figure:
    fig = go.Figure(go.Histogram(x=bank.kernel.ravel(), nbinsx=60, name="weights"))
    fig.update_layout(height=260, margin=dict(l=0, r=0, t=10, b=0), xaxis_title="weight value", yaxis_title="count")
    return fig


# ---------------------------------------------------------------- the page
widgets.keep_compiled_functions()
st.header("Filters")
choice = sidebar.require(picture=False)

m = choice.model
try:
    layers = conv_layers_with_kernels(choice.model_key, m)
except ValueError as exc:
    st.error(str(exc))
    st.stop()
if not layers:
    st.warning(f"{m.name} has no 2-D convolution layer with weights to show.")
    st.stop()

settings, view = st.columns([1, 3], gap="large")
with settings:
    layer = st.selectbox(
        "Layer",
        layers,
        index=0,
        key=f"filters:layer:{choice.model_key}",
        help="The first convolution layer is the one whose filters look like the input: edges, colours, blobs.",
    )
    bank = weights_of(choice.model_key, layer, m)
    kh, kw, cin, cout = bank.kernel.shape
    st.caption(f"{bank.type}: {cout} filters of {kh}x{kw}x{cin}." + (f" {bank.note}." if bank.note else ""))
    options = ([SHOW_RGB] if cin == 3 else []) + [SHOW_MEAN] + ([SHOW_CHANNEL] if cin > 1 else [])
    show = st.radio("Show", options, key=f"filters:show:{choice.model_key}:{layer}")
    channel = 0
    if show == SHOW_CHANNEL:
        channel = st.number_input("Input channel", 0, cin - 1, 0, key=f"filters:channel:{choice.model_key}:{layer}")
    columns = st.slider("Tiles per row", 4, 32, 8 if cout <= 32 else 16, key="filters:columns")

with view:
    if show == SHOW_RGB:
        tiles, rgb = filter_tiles(bank.kernel, "rgb"), True
        st.caption("Each filter is scaled to its own range: its darkest weight black, its brightest white, per colour.")
    elif show == SHOW_MEAN:
        tiles, rgb = filter_tiles(bank.kernel, "mean"), False
        st.caption("Each filter, averaged over its input channels and scaled to its own range (dark: negative).")
    else:
        tiles, rgb = filter_tiles(bank.kernel, "channels")[:, channel], False
        st.caption(f"The weights each filter applies to input channel {channel}, each filter scaled to its own range.")
    st.plotly_chart(tile_figure(tiles, columns, rgb), width="stretch", key="filters:tiles")

st.subheader("Weight and bias statistics")
left, right = st.columns([1, 2])
left.dataframe(
    pd.DataFrame({"statistic": list(bank.stats), "value": [f"{v:.4g}" for v in bank.stats.values()]}),
    hide_index=True,
    width="stretch",
)
right.plotly_chart(histogram(bank), width="stretch", key="filters:histogram")
if bank.bias is None:
    st.caption("This layer has no bias (typical before BatchNormalization).")
