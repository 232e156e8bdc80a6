"""Draw a heatmap over its picture: normalisation, colormaps, blending."""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps

from models.preprocessing import resize_map

COLORMAPS = ("jet", "inferno", "viridis", "magma", "turbo", "coolwarm", "gray")


def normalize(heatmap: np.ndarray, signed: bool = False, vmax: float | None = None) -> np.ndarray:
    """To 0..1; signed maps put zero at 0.5. A constant map gives zeros (or 0.5 when signed)."""
    h = np.nan_to_num(np.asarray(heatmap, dtype=np.float32))
    if signed:
        scale = vmax if vmax is not None else float(np.abs(h).max())
        return np.full_like(h, 0.5) if scale <= 0 else np.clip(0.5 + 0.5 * h / scale, 0, 1)
    lo = 0.0 if vmax is not None else float(h.min())
    hi = vmax if vmax is not None else float(h.max())
    return np.zeros_like(h) if hi <= lo else np.clip((h - lo) / (hi - lo), 0, 1)


def colorize(unit_map: np.ndarray, cmap: str = "jet") -> np.ndarray:
    """0..1 map -> uint8 RGB."""
    if cmap not in colormaps:
        raise ValueError(f"Unknown colormap {cmap!r}; choose one of {', '.join(COLORMAPS)}.")
    return (colormaps[cmap](unit_map)[..., :3] * 255).astype(np.uint8)


def as_rgb(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if np.issubdtype(img.dtype, np.integer) and img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)  # integer pixels are 0..255, like uint8
    elif img.dtype != np.uint8:
        img = (np.clip(img, 0, 1) * 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    if img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
    return img[..., :3]


def overlay(
    image: np.ndarray,
    heatmap: np.ndarray,
    alpha: float = 0.5,
    cmap: str = "jet",
    signed: bool = False,
    vmax: float | None = None,
) -> np.ndarray:
    """Blend a colour-mapped heatmap over the picture; uint8 RGB at the picture's size."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha={alpha} must be between 0 and 1.")
    base = as_rgb(image)
    h, w = base.shape[:2]
    colour = colorize(normalize(resize_map(heatmap, h, w), signed=signed, vmax=vmax), cmap).astype(np.float32)
    return (base.astype(np.float32) * (1 - alpha) + colour * alpha).round().astype(np.uint8)
