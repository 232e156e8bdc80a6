"""Activations: the feature maps of any layer for the current picture, and each layer's receptive field."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app import activation_search, dataset_picker, sidebar, widgets
from interpret import Cancelled, render
from interpret.activation_index import RANKINGS, ActivationIndex, channel_maps
from interpret.activations import FIRST_LAYER_NOTE, FeatureMaps, channel_order, feature_maps
from interpret.filters import mosaic, normalize_each
from interpret.receptive_field import LayerField, receptive_field_table
from interpret.top_patches import picture_label
from models import ModelHandle
from models.datasets import Dataset
from serving import compute, superseding

MAX_MAPS = 256
THUMB = 112  # pixels: the side of a strongest picture
STRONGEST_COLUMNS = 6


@st.cache_data(max_entries=32, ttl="1h", show_spinner="Computing the activation maps...")
def maps_of(model_key: str, image_key: str, layer: str, _model: ModelHandle, _image: np.ndarray) -> FeatureMaps:
    return compute.run(_model, feature_maps, image=_image, layer=layer)


@st.cache_data(max_entries=16, show_spinner="Computing the receptive fields...")
def field_table(model_key: str, _model: ModelHandle) -> list[LayerField]:
    return compute.run(_model, receptive_field_table)


@st.cache_data(max_entries=32, ttl="1h", show_spinner=False)
def maps_of_pictures(
    model_key: str, dataset_key: str, layer: str, channel: int, indices: tuple, _model: ModelHandle, _ds: Dataset
) -> np.ndarray:
    """The channel's maps for the few pictures shown."""
    pixels = np.stack([_ds.model_pixels(i, _model.input_shape) for i in indices])
    return compute.run(_model, channel_maps, pixels=pixels, layer=layer, channel=channel)


def strongest_pictures(
    m: ModelHandle,
    model_key: str,
    chosen: dataset_picker.Chosen,
    index: ActivationIndex,
    channel: int,
    k: int,
    by: str,
    cmap: str,
) -> None:
    """A gallery of the pictures where the channel is strongest, each with its map over it."""
    ds = chosen.dataset
    positions = index.strongest(channel, k, by=by)
    indices = tuple(int(index.indices[p]) for p in positions)
    maps = maps_of_pictures(model_key, chosen.key, index.layer, channel, indices, m, ds)
    values = index.peaks if by == "peak" else index.means
    columns = st.columns(STRONGEST_COLUMNS)
    for n, (pos, i) in enumerate(zip(positions, indices, strict=True)):
        with columns[n % STRONGEST_COLUMNS]:
            shown = render.fit(ds.model_pixels(i, m.input_shape), THUMB, THUMB)
            st.image(render.overlay(shown, maps[n], alpha=0.5, cmap=cmap), width=THUMB)
            st.caption(f"#{n + 1} {picture_label(ds, i)}: {by} {values[pos, channel]:.3g}")
            if st.button(
                "Open in Explain", key=f"activations:open:{i}", on_click=dataset_picker.open_in_explain, args=(ds, i)
            ):
                st.switch_page("views/explain.py")


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

st.subheader("The pictures where this channel is strongest")
st.caption(
    "Every channel of the layer is searched over the chosen pictures at once (batched, and kept), so choosing "
    "another channel shows its pictures at once. Peak: the channel's largest value (one place fires hard); mean: "
    "its mean over the map (it fires all over)."
)
pick_data, pick_rank = st.columns([2, 1])
with pick_data:
    chosen = dataset_picker.choose("activations", channels=m.input_shape[2])
with pick_rank:
    by = st.radio("Rank by", RANKINGS, key="activations:rank", horizontal=True)
    k = st.slider("Pictures", 1, 24, 6, key="activations:k")
    count = dataset_picker.picture_count("Pictures to search", m, chosen.dataset, key=f"activations:count:{chosen.key}")
cancel = superseding.supersede(st.session_state, "activations:job")
try:
    index = activation_search.index_for(m, choice.model_key, chosen, layer, count, cancel)
    strongest_pictures(m, choice.model_key, chosen, index, int(channel), k, by, cmap)
    st.caption(f"Searched {len(index.indices):,} pictures of {chosen.label} in {index.seconds:.1f} s.")
except Cancelled:
    st.stop()
except ValueError as exc:
    st.error(str(exc))

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
