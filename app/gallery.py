"""Sample pictures: the bundled Fashion-MNIST test images and natural photos from scikit-image."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.class_names import ASSETS

FASHION_DIR = ASSETS / "samples" / "fashion"
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "cat", "horse", "camera", "coins")


def fashion_samples() -> dict[str, Path]:
    """'Ankle boot 1' -> path, in class order."""
    out: dict[str, Path] = {}
    for path in sorted(FASHION_DIR.glob("*.png")):
        _, name, number = path.stem.split("_")
        out[f"{name.replace('-', ' ').capitalize()} {number}"] = path
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


def load_sample(entry: str) -> tuple[np.ndarray, bytes]:
    """A gallery entry -> (picture, PNG bytes that identify it)."""
    from interpret.images import encode_png, read_image

    kind, _, name = entry.partition(": ")
    if kind == "fashion":
        data = fashion_samples()[name].read_bytes()
        return read_image(data), data
    picture = photo(name)
    return picture, encode_png(picture)
