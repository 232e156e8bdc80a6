"""The activation index of (model, dataset, layer): computed once, in batches, and shared by pages and sessions.

Top patches and the Activations page's strongest pictures both read it, so choosing another
channel is instant; an uploaded model computes each batch in its worker.
"""

from __future__ import annotations

import os
import threading

import streamlit as st

from app.dataset_picker import Chosen
from app.shared_store import SharedStore
from interpret.activation_index import ActivationIndex, channel_peaks, index_activations
from models import ModelHandle
from serving import compute, superseding

KEPT_INDICES = int(os.environ.get("CNN_LENS_KEPT_ACTIVATION_INDICES", 8))
LARGE_INPUT_DEFAULT = 500  # pictures searched by default for models with inputs above 64x64


@st.cache_resource
def _indices() -> SharedStore:
    return SharedStore(KEPT_INDICES)


def default_count(m: ModelHandle, n: int) -> int:
    """All the pictures for small models; the first few hundred for large inputs (a quick look on a CPU)."""
    h, w, _ = m.input_shape
    return n if h * w <= 64 * 64 else min(n, LARGE_INPUT_DEFAULT)


def batch_size_for(m: ModelHandle) -> int:
    h, w, _ = m.input_shape
    return 256 if h * w <= 64 * 64 else 16


def stored_index(model_key: str, chosen: Chosen, layer: str, count: int) -> ActivationIndex | None:
    return _indices().get((model_key, chosen.key, layer, count))


def index_for(
    m: ModelHandle, model_key: str, chosen: Chosen, layer: str, count: int, cancel: threading.Event
) -> ActivationIndex:
    """The stored index, or a new one with a progress bar (raises ``Cancelled`` when superseded)."""
    found = stored_index(model_key, chosen, layer, count)
    if found is not None:
        return found
    bar = st.progress(0.0, text=f"Searching {count:,} pictures...")
    progress = superseding.progress_for(lambda f, msg: bar.progress(f, text=msg), cancel)
    index = index_activations(
        m,
        chosen.dataset,
        layer,
        count=count,
        batch_size=batch_size_for(m),
        progress=progress,
        peaks=lambda m, **kw: compute.run(m, channel_peaks, **kw),
    )
    bar.empty()
    return _indices().put((model_key, chosen.key, layer, count), index)
