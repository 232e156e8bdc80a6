"""The pictures a page searches: the sample pictures, the bundled test set, or a zip the user uploaded.

The Dataset, Top patches and Activations pages offer the same choice. The last one, and the
last zip uploaded, are remembered for the session, so a dataset chosen on one page is the one
the next page searches. Uploaded zips are checked by ``models.datasets.load_dataset`` (entry
allow-list, traversal, size and ratio caps, a picture count cap) and kept server-wide, a few at
a time (``CNN_LENS_KEPT_ZIPS``), so coming back does not ask for the file again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import streamlit as st

from app import gallery, sidebar, sources
from app.shared_store import SharedStore
from models import ModelHandle
from models.datasets import Dataset, DatasetError, from_pictures, load_dataset

SAMPLES = "The sample pictures"
BUNDLED = "Fashion-MNIST test set (10,000 pictures)"
ZIP = "A zip of my pictures"
CHOSEN = "datasets:chosen"  # the last choice, whichever page made it
LAST_ZIP = "datasets:last_zip"  # (digest, file name) of the last zip uploaded in this session
LARGE_INPUT_DEFAULT = 500  # pictures a page goes through by default for models with inputs above 64x64
KEPT_ZIPS = int(os.environ.get("CNN_LENS_KEPT_ZIPS", 4))  # each holds its zip: up to maxUploadSize


@dataclass
class Chosen:
    dataset: Dataset
    key: str  # names the pictures for caches: "fashion-mnist-test", "samples:1", or the zip's digest
    label: str  # what the page says it searched


def small_input(m: ModelHandle) -> bool:
    h, w, _ = m.input_shape
    return h * w <= 64 * 64


def default_count(m: ModelHandle, n: int) -> int:
    """All ``n`` pictures for small models; the first few hundred for large inputs (a quick look on a CPU)."""
    return n if small_input(m) else min(n, LARGE_INPUT_DEFAULT)


def batch_size_for(m: ModelHandle) -> int:
    """Pictures per batch when a page goes through a dataset."""
    return 256 if small_input(m) else 32


def picture_count(label: str, m: ModelHandle, ds: Dataset, key: str, help: str | None = None) -> int:
    """How many of the dataset's pictures the page goes through (``default_count`` to start with)."""
    return int(
        st.number_input(
            label,
            min_value=1,
            max_value=len(ds),
            value=default_count(m, len(ds)),
            step=max(1, len(ds) // 10),
            key=key,
            help=help,
        )
    )


def open_in_explain(ds: Dataset, index: int) -> None:
    """Make the dataset's picture (its file as stored) the sidebar's picture: a button's ``on_click``."""
    sidebar.open_picture(ds.raw(index), ds.ids[index])


@st.cache_resource(show_spinner="Reading the test set...")
def bundled_dataset() -> Dataset:
    return load_dataset("fashion-mnist-test")


@st.cache_resource(max_entries=4, show_spinner=False)
def sample_dataset(channels: int) -> Dataset:
    """The gallery's pictures of the model's kind: Fashion-MNIST for grey models, photos for colour ones."""
    kind = "fashion: " if channels == 1 else "photo: "
    entries = [e for e in gallery.samples_for(channels) if e.startswith(kind)]
    return from_pictures(
        [gallery.load_sample(e)[0] for e in entries], ids=[e.partition(": ")[2] for e in entries], name="samples"
    )


@st.cache_resource
def _zips() -> SharedStore:
    return SharedStore(KEPT_ZIPS)


def kept_zip(digest: str) -> Dataset | None:
    return _zips().get(digest)


def keep_zip(digest: str, data: bytes, name: str) -> Dataset:
    """The zip as a dataset (checked here, raising ``DatasetError``), kept for every page and session."""
    found = kept_zip(digest)
    if found is not None:
        return found
    with st.spinner("Checking the zip..."):
        return _zips().put(digest, load_dataset(data, name=name))


def choose(
    page: str, channels: int = 3, samples: bool = True, zip_help: str = "", label: str = "Pictures", horizontal=False
) -> Chosen:
    """The page's dataset radio (and zip uploader); stops the page with a message until there are pictures.

    ``channels``: the model's, so the sample pictures are of its kind; ``samples=False`` leaves them out.
    """
    options = ((SAMPLES,) if samples else ()) + (BUNDLED, ZIP)
    remembered = st.session_state.get(CHOSEN)
    source = st.radio(
        label,
        options,
        index=options.index(remembered) if remembered in options else 0,
        key=f"{page}:source",
        horizontal=horizontal,
    )
    st.session_state[CHOSEN] = source
    try:
        if source == SAMPLES:
            kind = 1 if channels == 1 else 3
            return Chosen(sample_dataset(kind), f"samples:{kind}", "the sample pictures")
        if source == BUNDLED:
            return Chosen(bundled_dataset(), "fashion-mnist-test", "the Fashion-MNIST test set")
        return _zip(page, zip_help)
    except DatasetError as exc:
        st.error(str(exc))
        st.stop()


def _zip(page: str, zip_help: str) -> Chosen:
    upload = st.file_uploader(
        "Zip of pictures (PNG, JPEG, ...)", type=["zip"], key=f"{page}:zip", help=zip_help or None
    )
    if upload is not None:
        data = upload.getvalue()
        digest = sources.digest(data)
        ds = keep_zip(digest, data, upload.name)
        st.session_state[LAST_ZIP] = (digest, upload.name)
        return Chosen(ds, digest, upload.name)
    last = st.session_state.get(LAST_ZIP)
    ds = kept_zip(last[0]) if last else None
    if ds is None:
        st.info("Upload a .zip of pictures" + (f": {zip_help}" if zip_help else "; other files are skipped."))
        st.stop()
    st.caption(f"Searching {last[1]}, uploaded earlier. Upload another zip to replace it.")
    return Chosen(ds, last[0], last[1])
