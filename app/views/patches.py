"""Top-activating patches: the picture regions that excite one channel most, cut at its receptive field."""

from __future__ import annotations

import cv2
import numpy as np
import streamlit as st

from app import activation_search, dataset_picker, sidebar
from interpret import Cancelled
from interpret.feature_visualization import target_units
from interpret.receptive_field import Field, layer_receptive_field
from interpret.top_patches import patches_of
from models import ModelHandle
from serving import compute, superseding

PATCH_DISPLAY = 128


@st.cache_data(max_entries=32, show_spinner=False)
def channels_of(model_key: str, layer: str, _model: ModelHandle) -> int:
    return compute.run(_model, target_units, layer=layer)


@st.cache_data(max_entries=32, show_spinner=False)
def field_of(model_key: str, layer: str, _model: ModelHandle) -> Field:
    return compute.run(_model, layer_receptive_field, layer=layer)


def enlarged(pixels: np.ndarray) -> np.ndarray:
    """Small patches drawn at a readable size with crisp pixels."""
    h, w = pixels.shape[:2]
    factor = max(1, PATCH_DISPLAY // max(h, w))
    out = cv2.resize(pixels, (w * factor, h * factor), interpolation=cv2.INTER_NEAREST)
    return out if out.ndim == 3 else out[..., None]


# ---------------------------------------------------------------- the page
st.header("Top-activating patches")
st.caption(
    "For one channel of a layer: the pictures in which it fires most, each cut to the receptive field of the "
    "unit where it fires (the lecture's 'patches yielding high values in activation maps'). Grey marks parts "
    "of the field that lie outside the picture."
)
choice = sidebar.require(picture=False)
m = choice.model
if not m.conv_layers:
    st.warning(f"{m.name} has no layer with a spatial (H, W, C) output.")
    st.stop()

settings, view = st.columns([1, 3], gap="large")
with settings:
    layer = st.selectbox("Layer", m.conv_layers, index=len(m.conv_layers) - 1, key=f"patches:layer:{choice.model_key}")
    n_channels = channels_of(choice.model_key, layer, m)
    channel = st.number_input(f"Channel (0..{n_channels - 1})", 0, n_channels - 1, 0, key=f"patches:channel:{layer}")
    k = st.slider("Patches", 1, 24, 8, key="patches:k")
    chosen = dataset_picker.choose("patches", channels=m.input_shape[2])
    ds = chosen.dataset
    count = dataset_picker.picture_count(
        "Pictures to search",
        m,
        ds,
        key=f"patches:count:{chosen.key}",
        help="Every channel of the layer is searched at once, so another channel needs no new search.",
    )
    rf = field_of(choice.model_key, layer, m)
    st.caption(
        f"{count:,} of {len(ds):,} pictures. A unit of {layer} sees "
        + ("the whole input." if rf.covers_input else f"{rf.size[0]:g}x{rf.size[1]:g} input pixels.")
    )

cancel = superseding.supersede(st.session_state, "patches:job")
with view:
    try:
        index = activation_search.index_for(m, choice.model_key, chosen, layer, count, cancel)
        patches = patches_of(index, ds, m.input_shape, rf, int(channel), k)
    except Cancelled:
        st.stop()
    except ValueError as exc:
        st.error(str(exc))
        st.stop()
    problems = ds.problems
    if problems:
        with st.expander(f"{len(problems)} entries were skipped"):
            st.text("\n".join(problems[:200]))
    columns = st.columns(min(4, max(1, len(patches))))
    for i, p in enumerate(patches):
        columns[i % len(columns)].image(
            enlarged(p.pixels),
            caption=f"#{i + 1} {p.label}: {p.value:.3g} at {p.position}",
            width="stretch",
            clamp=True,
        )
    st.caption(f"Searched {len(index.indices):,} pictures of {chosen.label} in {index.seconds:.1f} s.")
