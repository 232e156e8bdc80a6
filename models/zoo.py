"""The ImageNet zoo through ``keras.applications``.

ImageNet weights are downloaded by Keras on first use into its cache (``~/.keras/models``).
Offline, the failure names the missing file and where to put it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass

import keras

from models.class_names import read_asset_names
from models.errors import ModelLoadError
from models.handle import ModelHandle
from models.preprocessing import Preprocessing

apps = keras.applications


@dataclass(frozen=True)
class ZooEntry:
    title: str
    build: Callable[..., keras.Model]
    preprocess_input: Callable
    size: int
    scaling: str


ZOO: dict[str, ZooEntry] = {
    "mobilenet_v2": ZooEntry("MobileNetV2", apps.MobileNetV2, apps.mobilenet_v2.preprocess_input, 224, "-1..1"),
    "vgg16": ZooEntry("VGG16", apps.VGG16, apps.vgg16.preprocess_input, 224, "BGR, ImageNet mean subtracted"),
    "resnet50": ZooEntry(
        "ResNet50", apps.ResNet50, apps.resnet50.preprocess_input, 224, "BGR, ImageNet mean subtracted"
    ),
    "efficientnet_b0": ZooEntry(
        "EfficientNetB0", apps.EfficientNetB0, apps.efficientnet.preprocess_input, 224, "0..255 (rescaled inside)"
    ),
    "inception_v3": ZooEntry("InceptionV3", apps.InceptionV3, apps.inception_v3.preprocess_input, 299, "-1..1"),
}


def keras_cache_dir() -> str:
    """Where Keras looks for downloaded weights: ``<keras home>/models``.

    Keras reads ``KERAS_HOME`` once, when it is imported (and falls back to /tmp/.keras when
    the home folder is not writable), so ask Keras rather than the environment.
    """
    try:
        from keras.src.backend.config import keras_home

        home = keras_home()
    except ImportError:  # a Keras without this private accessor
        home = os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras"))
    return os.path.join(home, "models")


def _offline_message(title: str, exc: Exception) -> str:
    text = str(exc)
    url = re.search(r"https?://\S+?\.h5", text)
    where = keras_cache_dir()
    if url:
        filename = url.group(0).rsplit("/", 1)[-1]
        return (
            f"Could not download the ImageNet weights of {title} (is this machine offline?). "
            f"Missing file: {filename}. Download it from {url.group(0)} on a machine with internet "
            f"and copy it to {where}/{filename}, then load {title} again."
        )
    return (
        f"Could not get the ImageNet weights of {title} (is this machine offline?): {text.splitlines()[0] if text else exc!r}. "
        f"Keras keeps downloaded weights in {where}."
    )


def load_zoo(name: str, weights: str | None = "imagenet") -> ModelHandle:
    entry = ZOO[name]
    try:
        model = entry.build(weights=weights, classifier_activation="softmax")
    except Exception as exc:  # keras.utils.get_file raises plain Exception on fetch failure
        if weights is None:
            raise
        raise ModelLoadError(_offline_message(entry.title, exc)) from exc
    preprocessing = Preprocessing(entry.title, entry.scaling, entry.preprocess_input)
    title = entry.title if weights else f"{entry.title} (random weights)"
    return ModelHandle(title, model, preprocessing, read_asset_names("imagenet_classes.txt"), source="zoo")
