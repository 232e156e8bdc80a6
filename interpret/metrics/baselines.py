"""Two maps that know nothing about the model: the floor every method must beat.

- ``"random"``: uniform noise, seeded. Any metric's value for it is what chance gives.
- ``"edge"``: the Sobel gradient magnitude of the picture (``skimage.filters.sobel``), the
  edge detector that Adebayo et al. (2018, "Sanity checks for saliency maps", NeurIPS,
  arXiv:1810.03292) found some saliency methods to resemble. A method that scores no
  better than edges is not telling you about the model.

Both are evaluated like any method (``interpret.metrics.evaluate(methods=[..., "random",
"edge"])``). Neither looks at the model, so neither changes when the model is randomised:
they fail the sanity check by construction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from skimage.filters import sobel

from interpret.metrics.perturb import picture_pixels


@dataclass(frozen=True)
class Baseline:
    name: str
    title: str
    make: Callable[[np.ndarray, int], np.ndarray]  # (pixels (H, W, C) 0..255, seed) -> (H, W) float32
    summary: str


def random_map(pixels: np.ndarray, seed: int = 0) -> np.ndarray:
    """Uniform noise in 0..1 over the picture, the same for the same seed and size."""
    rng = np.random.default_rng((int(seed), 2))  # a stream of its own (MuFidelity's subsets use another)
    return rng.random(pixels.shape[:2]).astype(np.float32)


def edge_map(pixels: np.ndarray, seed: int = 0) -> np.ndarray:
    """Sobel gradient magnitude of the picture's grey level (0..1)."""
    colour = np.asarray(pixels, dtype=np.float64)[..., :3] / 255.0
    grey = colour.mean(axis=-1) if colour.shape[-1] == 3 else colour[..., 0]
    return sobel(grey).astype(np.float32)


BASELINES: dict[str, Baseline] = {
    "random": Baseline("random", "Random map (baseline)", random_map, "Seeded uniform noise: what chance scores."),
    "edge": Baseline(
        "edge", "Sobel edges (baseline)", edge_map, "The picture's edges (Sobel), blind to the model: an edge detector."
    ),
}


def baseline_map(name: str, image: np.ndarray, seed: int = 0) -> np.ndarray:
    """The baseline map ``name`` ("random" or "edge") over ``image``: float32 (H, W)."""
    if name not in BASELINES:
        raise ValueError(f"Unknown baseline {name!r}; choose one of {', '.join(BASELINES)}.")
    return BASELINES[name].make(picture_pixels(image), seed)
