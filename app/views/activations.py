"""Activations: the feature maps of any layer for the current picture, and each layer's receptive field."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app import sidebar, widgets
from interpret import render
from interpret.activations import FIRST_LAYER_NOTE, FeatureMaps, channel_order, feature_maps
from interpret.filters import mosaic, normalize_each
from interpret.receptive_field import LayerField, receptive_field_table
from models import ModelHandle
from serving import compute

MAX_MAPS = 256


@st.cache_data(max_entries=32, ttl="1h", show_spinner="Computing the activation maps...")
def maps_of(model_key: str, image_key: str, layer: str, _model: ModelHandle, _image: np.ndarray) -> FeatureMaps:
    return compute.run(_model, feature_maps, image=_image, layer=layer)


@st.cache_data(max_entries=16, show_spinner="Computing the receptive fields...")
def field_table(model_key: str, _model: ModelHandle) -> list[LayerField]:
    return compute.run(_model, receptive_field_table)


def axis_text(values: tuple) -> str:
    return " x ".join(f"{v:g}" for v in values)


def table_frame(rows: list[LayerField], conv_layers: list[str]) -> pd.DataFrame:
    spatial = set(conv_layers)
    return pd.DataFrame(
        [
            {
                "layer": r.path,
                "type": r.type,
                "output shape": " x ".join(str(s) for s in r.output_shape),
                "receptive field": "whole input" if r.covers_input else axis_text(r.size),
                "jump": axis_text(r.jump),
                "start": axis_text(r.start),
                "notes": "; ".join(r.notes),
            }
            for r in rows
            if r.path in spatial or r.covers_input
        ]
    )


def grid_figure(fm: FeatureMaps, order: list[int], columns: int) -> go.Figure:
    """The maps as one mosaic, each scaled to its own range; hovering names the channel and the value."""
    maps = np.transpose(fm.maps, (2, 0, 1))[order]
    channel = np.array(order, np.float32)[:, None, None] * np.ones(maps.shape, np.float32)
    custom = np.stack([mosaic(channel, columns), mosaic(maps, columns)], axis=-1)
    shown = mosaic(normalize_each(maps), columns)
    fig = go.Figure(
        go.Heatmap(
            z=shown,
            customdata=custom,
            colorscale="Viridis",
            showscale=False,
            hoverongaps=False,
            hovertemplate="channel %{customdata[0]}<br>activation %{customdata[1]:.4g}<extra></extra>",
        )
    )
    fig.update_layout(
        height=int(np.clip(900 * shown.shape[0] / shown.shape[1], 200, 1600)), margin=dict(l=0, r=0, t=0, b=0)
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x")
    return fig


def single_map_figure(values: np.ndarray, channel: int) -> go.Figure:
    fig = go.Figure(
        go.Heatmap(z=values, colorscale="Viridis", hovertemplate="row %{y}, col %{x}<br>%{z:.4g}<extra></extra>")
    )
    fig.update_layout(height=420, margin=dict(l=0, r=0, t=30, b=0), title=f"channel {channel}")
    fig.update_yaxes(autorange="reversed", scaleanchor="x")
    return fig


# ---------------------------------------------------------------- the page
widgets.keep_compiled_functions()
st.header("Activation maps")
choice = sidebar.require(picture=True)

m, image = choice.model, choice.image
if not m.conv_layers:
    st.warning(f"{m.name} has no layer with a spatial (H, W, C) output.")
    st.stop()
st.info(FIRST_LAYER_NOTE)

settings, view = st.columns([1, 3], gap="large")
with settings:
    layer = st.selectbox("Layer", m.conv_layers, index=0, key=f"activations:layer:{choice.model_key}")
    sort = st.checkbox("Sort by mean activation", value=False, key="activations:sort")
    columns = st.slider("Maps per row", 4, 32, 8, key="activations:columns")
try:
    fm = maps_of(choice.model_key, choice.image_key, layer, m, image)
except ValueError as exc:
    st.error(str(exc))
    st.stop()

channels = fm.maps.shape[-1]
order = channel_order(fm.means, sort)
with view:
    shown = order[:MAX_MAPS]
    st.caption(
        f"{layer}: {channels} maps of {fm.maps.shape[0]}x{fm.maps.shape[1]}"
        + (f" (the first {MAX_MAPS} shown)" if channels > MAX_MAPS else "")
        + (", sorted by mean activation" if sort else "")
        + ". Each map is scaled to its own range."
    )
    st.plotly_chart(grid_figure(fm, shown, min(columns, len(shown))), width="stretch", key="activations:grid")

st.subheader("One map, large and over the picture")
pick, opacity, colours = st.columns([2, 1, 1])
channel = pick.selectbox(
    "Map",
    order,
    index=0,
    format_func=lambda c: f"channel {c} (mean {fm.means[c]:.3g}, max {fm.maxima[c]:.3g})",
    key=f"activations:channel:{choice.model_key}:{layer}",
)
alpha = opacity.slider("Opacity", 0.0, 1.0, 0.5, 0.05, key="activations:alpha")
cmap = colours.selectbox("Colormap", render.COLORMAPS, key="activations:cmap")
large, blended = st.columns(2)
large.plotly_chart(single_map_figure(fm.maps[..., channel], channel), width="stretch", key="activations:single")
blended.image(
    render.encode(
        render.overlay(render.display_picture(image), fm.maps[..., channel], alpha=alpha, cmap=cmap),
        render.display_format(image),
    ),
    caption=f"channel {channel} of {layer} over the picture",
    width="stretch",
    output_format=render.display_format(image),
)

st.subheader("Receptive field of each layer")
st.caption(
    "Receptive field: the input pixels one unit of the layer can see. Jump: the distance in input pixels "
    "between neighbouring units. Start: where the field of the first unit begins (negative: in the padding)."
)
try:
    rows = field_table(choice.model_key, m)
    st.dataframe(table_frame(rows, m.conv_layers), hide_index=True, width="stretch")
except ValueError as exc:
    st.error(str(exc))
