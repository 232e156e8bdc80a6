"""Turn the pictures a user has into the tensor a model expects.

A picture is uint8 (0..255) or float (0..1), RGB or grayscale, of any size. The model
wants (N, H, W, C) float32 at its own size, with its own scaling (``preprocess_input``
for the ImageNet zoo, ``x / 255`` for the bundled model).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

ScaleFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Preprocessing:
    """How pixel values 0..255 (float32) become model input."""

    name: str
    description: str
    scale: ScaleFn

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        return np.asarray(self.scale(np.array(pixels, dtype=np.float32)), dtype=np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / 255.0


def _symmetric(x: np.ndarray) -> np.ndarray:
    return x / 127.5 - 1.0


def _raw(x: np.ndarray) -> np.ndarray:
    return x


PRESETS: dict[str, Preprocessing] = {
    "0..1": Preprocessing("0..1", "pixels / 255", _unit),
    "-1..1": Preprocessing("-1..1", "pixels / 127.5 - 1", _symmetric),
    "0..255": Preprocessing("0..255", "raw pixel values (the model rescales itself)", _raw),
}


def as_batch(images: np.ndarray) -> np.ndarray:
    """(H,W), (H,W,C) or (N,H,W,C) -> (N,H,W,C); values checked, dtype kept."""
    arr = np.asarray(images)
    if arr.ndim == 2:
        arr = arr[None, :, :, None]
    elif arr.ndim == 3:
        arr = arr[None] if arr.shape[-1] in (1, 2, 3, 4) else arr[..., None]
    if arr.ndim != 4 or arr.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(
            f"Expected an image of shape (H, W), (H, W, C) or a batch (N, H, W, C) with C in 1, 2, 3, 4 (gray, gray+alpha, RGB, RGBA); got {np.shape(images)}."
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0 or arr.shape[2] == 0:
        raise ValueError(f"The image is empty (shape {np.shape(images)}).")
    return arr


def to_pixels(images: np.ndarray) -> np.ndarray:
    """Any batch -> float32 pixel values in 0..255 (uint8 as is, floats in 0..1 scaled)."""
    arr = as_batch(images)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32)
    if arr.dtype == bool:
        return arr.astype(np.float32) * 255.0
    if np.issubdtype(arr.dtype, np.integer):
        low, high = int(arr.min()), int(arr.max())
        if low < 0 or high > 255:
            raise ValueError(
                f"An integer image must hold values in 0..255; this one goes from {low} to {high}. "
                "Convert it to uint8 (or to floats in 0..1) first."
            )
        return arr.astype(np.float32)
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise ValueError("The image contains NaN or infinite values.")
    if arr.min() < 0.0 or arr.max() > 1.0:
        raise ValueError("A float image must hold values in 0..1 (or pass uint8 values in 0..255).")
    return arr * 255.0


def match_channels(pixels: np.ndarray, channels: int) -> np.ndarray:
    """Drop alpha (gray+alpha or RGBA), then gray -> RGB by repetition or RGB -> gray by luminance (ITU-R 601)."""
    if pixels.shape[-1] in (2, 4):  # gray+alpha, RGBA: drop alpha
        pixels = pixels[..., :-1]
    have = pixels.shape[-1]
    if have == channels:
        return pixels
    if have == 1 and channels == 3:
        return np.repeat(pixels, 3, axis=-1)
    if have == 3 and channels == 1:
        return (pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
    raise ValueError(f"Cannot turn a {have}-channel image into the {channels} channels the model expects.")


def resize_batch(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize every image to (height, width): area averaging down, bilinear up."""
    n, h, w, c = pixels.shape
    if (h, w) == (height, width):
        return pixels
    interp = cv2.INTER_AREA if h * w > height * width else cv2.INTER_LINEAR
    out = np.empty((n, height, width, c), dtype=np.float32)
    for i in range(n):
        out[i] = cv2.resize(pixels[i], (width, height), interpolation=interp).reshape(height, width, c)
    return out


def resize_map(heatmap: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bring a 2-D map back to the picture's own size (bilinear), float32."""
    m = np.asarray(heatmap, dtype=np.float32)
    if m.shape == (height, width):
        return m
    return cv2.resize(m, (width, height), interpolation=cv2.INTER_LINEAR).astype(np.float32)
