"""Cached access to models and pictures for the pages (Streamlit caches live here)."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import streamlit as st

from models import ModelHandle, load

MODEL_CACHE_ENTRIES = 4


@st.cache_resource(max_entries=MODEL_CACHE_ENTRIES, show_spinner="Loading the model...")
def named_model(name: str, weights: str | None) -> ModelHandle:
    return load(name, weights=weights)


@st.cache_resource(max_entries=MODEL_CACHE_ENTRIES, show_spinner="Checking and loading the uploaded model...")
def uploaded_model(digest: str, _data: bytes, filename: str, class_names: tuple[str, ...], preprocessing: str) -> ModelHandle:
    """Load an uploaded .keras file (checked before Keras reads it); keyed on its SHA-256."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / (Path(filename).stem[:60] + ".keras")
        path.write_bytes(_data)
        handle = load(str(path), class_names=list(class_names), preprocessing=preprocessing)
    handle.name = Path(filename).stem
    return handle


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
