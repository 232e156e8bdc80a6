"""The activation index of (model, dataset, layer): computed once, in batches, and shared by pages and sessions.

Top patches and the Activations page's strongest pictures both read it, so choosing another
channel is instant; an uploaded model computes each batch in its worker.
"""

from __future__ import annotations

import os
import threading

import streamlit as st

from app import dataset_picker
from app.shared_store import SharedStore
from interpret.activation_index import ActivationIndex, channel_peaks, index_activations
from models import ModelHandle
from serving import compute, superseding

KEPT_INDICES = int(os.environ.get("CNN_LENS_KEPT_ACTIVATION_INDICES", 8))


@st.cache_resource
def _indices() -> SharedStore:
    return SharedStore(KEPT_INDICES)


def stored_index(model_key: str, chosen: dataset_picker.Chosen, layer: str, count: int) -> ActivationIndex | None:
    return _indices().get((model_key, chosen.key, layer, count))


def index_for(
    m: ModelHandle, model_key: str, chosen: dataset_picker.Chosen, layer: str, count: int, cancel: threading.Event
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
        batch_size=dataset_picker.batch_size_for(m),
        progress=progress,
        peaks=lambda m, **kw: compute.run(m, channel_peaks, **kw),
    )
    bar.empty()
    return _indices().put((model_key, chosen.key, layer, count), index)
