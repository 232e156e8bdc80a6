"""Top-activating patches: the picture regions that excite one channel most, cut at its receptive field."""

from __future__ import annotations

import cv2
import numpy as np
import streamlit as st

from app import gallery, sidebar, sources
from interpret import Cancelled
from interpret.feature_visualization import target_units
from interpret.receptive_field import Field, layer_receptive_field
from interpret.top_patches import Patch, images_from_zip, top_patches
from models import ModelHandle
from serving import compute, superseding

FROM_SAMPLES = "The bundled sample pictures"
FROM_ZIP = "A zip of my pictures"
PATCH_DISPLAY = 128


@st.cache_data(max_entries=32, show_spinner=False)
def channels_of(model_key: str, layer: str, _model: ModelHandle) -> int:
    return compute.run(_model, target_units, layer=layer)


@st.cache_data(max_entries=32, show_spinner=False)
def field_of(model_key: str, layer: str, _model: ModelHandle) -> Field:
    return compute.run(_model, layer_receptive_field, layer=layer)


@st.cache_data(max_entries=8, show_spinner="Reading the zip...")
def pictures_in_zip(digest: str, _data: bytes) -> tuple[list[np.ndarray], list[str], list[str]]:
    return images_from_zip(_data)


def sample_pictures(channels: int) -> tuple[list[np.ndarray], list[str]]:
    """Fashion-MNIST samples for grayscale models, scikit-image photos for colour ones."""
    kind = "fashion: " if channels == 1 else "photo: "
    entries = [e for e in gallery.samples_for(channels) if e.startswith(kind)]
    return [gallery.load_sample(e)[0] for e in entries], [e.partition(": ")[2] for e in entries]


@st.cache_data(max_entries=16, ttl="1h", show_spinner=False)
def strongest(
    model_key: str, pictures_key: str, layer: str, channel: int, k: int, _model, _images, _labels, _cancel
) -> list[Patch]:
    bar = st.progress(0.0, text="Searching the pictures...")
    progress = superseding.progress_for(lambda f, msg: bar.progress(f, text=msg), _cancel)
    found = compute.run(
        _model, top_patches, images=_images, layer=layer, channel=channel, k=k, labels=_labels, progress=progress
    )
    bar.empty()
    return found


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
    source = st.radio("Pictures", (FROM_SAMPLES, FROM_ZIP), key="patches:source")
    if source == FROM_SAMPLES:
        images, labels = sample_pictures(m.input_shape[2])
        pictures_key = f"samples:{m.input_shape[2]}"
    else:
        upload = st.file_uploader("Zip of pictures (PNG, JPEG, ...)", type=["zip"], key="patches:zip")
        if upload is None:
            st.info("Upload a .zip holding pictures; other files are skipped.")
            st.stop()
        data = upload.getvalue()
        pictures_key = sources.digest(data)
        try:
            images, labels, problems = pictures_in_zip(pictures_key, data)
        except ValueError as exc:
            st.error(str(exc))
            st.stop()
        for problem in problems[:10]:
            st.warning(problem)
        if len(problems) > 10:
            st.warning(f"... and {len(problems) - 10} more entries skipped.")
    rf = field_of(choice.model_key, layer, m)
    st.caption(
        f"{len(images)} pictures. A unit of {layer} sees "
        + ("the whole input." if rf.covers_input else f"{rf.size[0]:g}x{rf.size[1]:g} input pixels.")
    )

cancel = superseding.supersede(st.session_state, "patches:job")
with view:
    try:
        patches = strongest(choice.model_key, pictures_key, layer, int(channel), k, m, images, labels, cancel)
    except Cancelled:
        st.stop()
    except ValueError as exc:
        st.error(str(exc))
        st.stop()
    columns = st.columns(min(4, max(1, len(patches))))
    for i, p in enumerate(patches):
        columns[i % len(columns)].image(
            enlarged(p.pixels),
            caption=f"#{i + 1} {p.label}: {p.value:.3g} at {p.position}",
            width="stretch",
            clamp=True,
        )
