"""The sidebar: which model, which picture, and which device runs the work.

Every page reads the choice through ``current()``; the sidebar is drawn once per run
by ``app/main.py`` before the page.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import streamlit as st

from app import gallery, sources, trained
from models import BUNDLED, ModelHandle
from models.class_names import parse_class_names
from models.device import describe_device
from models.preprocessing import PRESETS
from models.teachable import strip_label_indices
from models.zoo import ZOO
from serving.h5_import import is_legacy_upload

MODEL_SOURCES = ("Bundled: Fashion-MNIST CNN", "ImageNet zoo", "Upload a .keras model")
IMAGE_SOURCES = ("Sample gallery", "Upload a picture", "Camera")
DATASET_PICTURE = "From the Dataset page"  # offered once a picture was opened there ("Open in Explain")


@dataclass
class Choice:
    model: ModelHandle | None = None
    model_key: str = ""
    image: np.ndarray | None = None
    image_bytes: bytes = b""
    image_label: str = ""
    image_key: str = ""  # SHA-256 of image_bytes: what result caches key the picture on
    problems: list[str] = field(default_factory=list)  # bad input, in words a person can act on

    @property
    def ready(self) -> bool:
        return self.model is not None and self.image is not None


def _choose_model() -> tuple[ModelHandle | None, str]:
    mine = trained.current()  # the Train page's model, once "Explain this model" was pressed
    options = MODEL_SOURCES + ((trained.TRAINED,) if mine else ())
    if st.session_state.get("model_source") not in (None, *options):
        st.session_state["model_source"] = MODEL_SOURCES[0]
    source = st.radio("Model", options, key="model_source")
    if source == trained.TRAINED and mine:
        return mine[0], f"trained:{mine[1]}"
    if source == MODEL_SOURCES[0]:
        return sources.named_model(BUNDLED, None), BUNDLED
    if source == MODEL_SOURCES[1]:
        name = st.selectbox("Architecture", list(ZOO), format_func=lambda k: ZOO[k].title, key="zoo_name")
        weights = st.radio(
            "Weights",
            ("ImageNet", "Random (offline demo)"),
            key="zoo_weights",
            help="ImageNet weights are downloaded once into the Keras cache. Random weights need no network.",
        )
        w = "imagenet" if weights == "ImageNet" else None
        return sources.named_model(name, w), f"{name}:{w}"
    upload = st.file_uploader(
        "Model file (.keras, Keras 2 .h5, or a Teachable Machine .zip)",
        type=["keras", "h5", "hdf5", "zip"],
        key="model_upload",
        help="A Teachable Machine export (converted_keras.zip, or keras_model.h5 with labels.txt as class names).",
    )
    names_file = st.file_uploader("Class names (optional .txt or .json)", type=["txt", "json"], key="names_upload")
    typed = st.text_input("...or type class names, comma-separated", key="names_typed")
    prep = st.selectbox(
        "Input scaling", list(PRESETS), format_func=lambda k: f"{k}: {PRESETS[k].description}", key="upload_prep"
    )
    if upload is None:
        st.info("Upload a `.keras` file saved with `model.save('name.keras')`, or a Keras 2 `.h5` file.")
        return None, ""
    names = parse_class_names(names_file.getvalue()) if names_file else parse_class_names(typed)
    names = strip_label_indices(names)  # Teachable Machine's labels.txt: "0 Cat"
    data, filename = upload.getvalue(), upload.name
    key = sources.digest(data)
    if is_legacy_upload(filename):  # checked here, converted to .keras in a separate process
        legacy = sources.legacy_upload(key, data, filename)
        data, filename, names = legacy.keras_bytes, legacy.filename, names or legacy.class_names
        if legacy.preprocessing and prep != legacy.preprocessing:
            st.caption(f"A Teachable Machine project: its input scaling is {legacy.preprocessing}.")
            prep = legacy.preprocessing
    return sources.uploaded_model(key, data, filename, tuple(names), prep), f"upload:{key}:{prep}:{','.join(names)}"


def _choose_image(model: ModelHandle | None) -> tuple[np.ndarray | None, bytes, str]:
    from interpret.images import read_image

    opened = st.session_state.get("dataset_picture")  # (label, file bytes), from open_picture
    options = IMAGE_SOURCES + ((DATASET_PICTURE,) if opened else ())
    if st.session_state.get("image_source") not in (None, *options):
        st.session_state["image_source"] = IMAGE_SOURCES[0]
    source = st.radio("Picture", options, key="image_source")
    if source == DATASET_PICTURE and opened:
        label, data = opened
        picture = read_image(data)
        st.image(picture, caption=label, width=120)
        return picture, data, label
    if source == IMAGE_SOURCES[0]:
        channels = model.input_shape[2] if model else 3
        # One picker per kind of model, so switching to an RGB model offers a photo first.
        entry = st.selectbox(
            "Sample",
            gallery.samples_for(channels),
            format_func=gallery.label,
            key="sample:gray" if channels == 1 else "sample:rgb",
        )
        picture, data = gallery.load_sample(entry)
        st.image(picture, caption=entry.partition(": ")[2], width=120)
        return picture, data, entry.partition(": ")[2]
    if source == IMAGE_SOURCES[1]:
        upload = st.file_uploader("Picture", type=None, key="image_upload", help="PNG, JPEG, GIF, BMP, TIFF or WebP")
        if upload is None:
            return None, b"", ""
        data = upload.getvalue()
        return read_image(data), data, upload.name
    shot = st.camera_input("Take a picture", key="camera")
    if shot is None:
        return None, b"", ""
    data = shot.getvalue()
    return read_image(data), data, "camera"


def render() -> Choice:
    """Draw the sidebar; bad input shows a message there and leaves the rest of the app working."""
    choice = Choice()
    with st.sidebar:
        st.title("CNN Lens")
        try:
            choice.model, choice.model_key = _choose_model()
        except ValueError as exc:  # ModelLoadError, UnsafeModelError, bad class names
            choice.problems.append(f"Model: {exc}")
            st.error(str(exc))
        if choice.model is not None:
            h, w, c = choice.model.input_shape
            st.caption(f"Input {h}×{w}×{c}, {choice.model.num_classes} classes.")
        st.divider()
        try:
            choice.image, choice.image_bytes, choice.image_label = _choose_image(choice.model)
            choice.image_key = sources.digest(choice.image_bytes) if choice.image is not None else ""
        except ValueError as exc:  # ImageError: not an image, corrupt, too large
            choice.problems.append(f"Picture: {exc}")
            st.error(str(exc))
        st.divider()
        st.caption(f"Device: {describe_device()}")
    st.session_state["choice"] = choice
    return choice


def open_picture(data: bytes, label: str) -> None:
    """Make a picture (its file's bytes) the sidebar's picture; call it from a widget's ``on_click``."""
    st.session_state["dataset_picture"] = (label, bytes(data))
    st.session_state["image_source"] = DATASET_PICTURE


def current() -> Choice:
    return st.session_state.get("choice") or Choice()


def require(picture: bool = True) -> Choice:
    """The sidebar's choice; the page stops with a hint while the model (or the picture) is missing."""
    choice = current()
    if choice.model is None or (picture and choice.image is None):
        st.info("Pick a model and a picture in the sidebar." if picture else "Pick a model in the sidebar.")
        st.stop()
    return choice
