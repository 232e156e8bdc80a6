"""Cached access to models and pictures for the pages (Streamlit caches live here).

Bundled and zoo models are loaded in this process and cached (``MODEL_CACHE_ENTRIES``,
``MODEL_CACHE_TTL_S``). Uploaded models never load here: they go to the server's
``WorkerPool`` (one per server), which checks the file, loads it in a sandboxed worker
process and keeps at most ``CNN_LENS_MAX_UPLOADS`` uploads and ``CNN_LENS_MAX_WORKERS``
live workers, so memory stays bounded however many files people upload.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

import streamlit as st

from models import ModelHandle, load
from serving.h5_import import ConvertedUpload, convert_upload
from serving.pool import UploadedModel, WorkerPool

MODEL_CACHE_ENTRIES = int(os.environ.get("CNN_LENS_MODEL_CACHE_ENTRIES", 4))
MODEL_CACHE_TTL_S = float(os.environ.get("CNN_LENS_MODEL_CACHE_TTL_S", 3600))


@st.cache_resource(max_entries=MODEL_CACHE_ENTRIES, ttl=MODEL_CACHE_TTL_S, show_spinner="Loading the model...")
def named_model(name: str, weights: str | None) -> ModelHandle:
    return load(name, weights=weights)


@st.cache_resource(show_spinner=False)
def worker_pool() -> WorkerPool:
    """The server's one pool of upload workers (shared by every session)."""
    return WorkerPool()


def uploaded_model(
    digest: str, _data: bytes, filename: str, class_names: Sequence[str], preprocessing: str
) -> UploadedModel:
    """Check an uploaded .keras file and load it in its worker; the pool caches it by content."""
    with st.spinner("Checking the uploaded model and loading it in a sandboxed worker..."):
        return worker_pool().load(_data, filename, tuple(class_names), preprocessing)


@st.cache_resource(max_entries=8, ttl=MODEL_CACHE_TTL_S, show_spinner=False)
def legacy_upload(digest: str, _data: bytes, filename: str) -> ConvertedUpload:
    """A Keras 2 .h5 or Teachable Machine .zip: checked here, converted to .keras in a separate process."""
    with st.spinner("Checking the Keras 2 model and converting it to the Keras 3 format..."):
        return convert_upload(_data, filename)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
