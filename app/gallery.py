"""Sample pictures: the bundled Fashion-MNIST test images and natural photos from scikit-image."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from models.class_names import ASSETS

FASHION_DIR = ASSETS / "samples" / "fashion"
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "cat", "horse", "camera", "coins")


def fashion_samples() -> dict[str, Path]:
    """'Ankle boot 1' -> path, in class order; files are named '<class index>_<name>_<n>.png'."""
    from models.class_names import read_asset_names

    names = read_asset_names("fashion_mnist_classes.txt")
    out: dict[str, Path] = {}
    for path in sorted(FASHION_DIR.glob("*.png"), key=lambda p: (int(p.stem.split("_")[0]), p.stem)):
        index, name, number = path.stem.split("_")
        label = names[int(index)] if int(index) < len(names) else name.replace("-", " ").capitalize()
        out[f"{label} {number}"] = path
    return out


def photo(name: str) -> np.ndarray:
    import skimage.data

    if name not in PHOTOS:
        raise ValueError(f"Unknown sample photo {name!r}.")
    return np.asarray(getattr(skimage.data, name)())


def samples_for(channels: int) -> list[str]:
    """Gallery entries suited to a model: Fashion-MNIST first for grayscale models, photos first for RGB."""
    fashion = [f"fashion: {k}" for k in fashion_samples()]
    photos = [f"photo: {p}" for p in PHOTOS]
    return fashion + photos if channels == 1 else photos + fashion


def label(entry: str) -> str:
    """How a gallery entry reads in the picker: 'Fashion-MNIST · Coat 1', 'Photo · chelsea'."""
    kind, _, name = entry.partition(": ")
    return f"{'Fashion-MNIST' if kind == 'fashion' else 'Photo'} · {name}"


@functools.lru_cache(maxsize=len(PHOTOS) + 32)
def load_sample(entry: str) -> tuple[np.ndarray, bytes]:
    """A gallery entry -> (picture, PNG bytes that identify it); read-only, decoded once per process."""
    from interpret.images import encode_png, read_image

    kind, _, name = entry.partition(": ")
    if kind == "fashion":
        if name not in fashion_samples():
            raise ValueError(f"Unknown sample {entry!r}.")
        data = fashion_samples()[name].read_bytes()
        picture = read_image(data)
    else:
        picture = photo(name)
        data = encode_png(picture)
    picture.setflags(write=False)
    return picture, data
