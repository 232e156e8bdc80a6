"""Average Drop % and Increase in Confidence.

Chattopadhay, Sarkar, Howlader & Balasubramanian (2018), "Grad-CAM++: Generalized
Gradient-based Visual Explanations for Deep Convolutional Networks", WACV,
arXiv:1710.11063 (Sec. 5.1, "Object Recognition").

The *explanation map* is the picture multiplied pixel by pixel by the heatmap normalised to
0..1 (its positive part divided by its maximum: for a signed map, evidence against the class
counts as nothing). With ``Y`` the target's confidence (probability) on the picture and
``O`` on the explanation map:

- **Average Drop %** = ``max(0, Y - O) / Y * 100``, averaged over pictures: how much
  confidence is lost when only what the map highlights is shown. **Lower is better.**
- **Increase in Confidence** = ``100`` if ``O > Y`` else ``0``, averaged over pictures:
  the percentage of pictures on which the highlighted part alone is *more* convincing.
  **Higher is better.**

One forward pass per map (and one for the picture), batched with the other metrics when
called through :func:`interpret.metrics.evaluate`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from interpret.metrics.perturb import Plan, map_for, picture_pixels, scores_of
from interpret.progress import Progress
from models.handle import ModelHandle


@dataclass
class ConfidenceChange:
    """Average Drop % and Increase in Confidence for one picture and one map."""

    drop: float  # max(0, Y - O) / Y * 100
    increase: float  # 100.0 if O > Y else 0.0
    original: float  # Y: the target's probability on the picture
    masked: float  # O: on the picture times the normalised map
    target: int = 0


def normalised_map(heatmap: np.ndarray) -> np.ndarray:
    """The heatmap's positive part scaled to 0..1 (all zeros when nothing is positive)."""
    heat = np.clip(np.asarray(heatmap, dtype=np.float64), 0.0, None)
    top = float(heat.max()) if heat.size else 0.0
    return heat / top if top > 0 else np.zeros_like(heat)


def confidence_change(original: float, masked: float, target: int = 0) -> ConfidenceChange:
    """The paper's two per-picture terms from the two confidences."""
    drop = max(0.0, original - masked) / original * 100.0 if original > 0 else 0.0
    return ConfidenceChange(float(drop), 100.0 if masked > original else 0.0, float(original), float(masked), target)


def add_explanation_map(plan: Plan, heatmap: np.ndarray) -> int:
    """Add the explanation map (picture x normalised heatmap) to ``plan``; returns its row."""
    keep = normalised_map(map_for(heatmap, plan.shape)).astype(np.float32)
    return plan.add("zero", lambda: keep)


def average_drop(
    m: ModelHandle,
    image: np.ndarray,
    heatmap: np.ndarray,
    target: int | str | None = None,
    batch_size: int | None = None,
    progress=None,
) -> ConfidenceChange:
    """Average Drop % and Increase in Confidence of ``heatmap`` on one picture (average them over many)."""
    from interpret.metrics.deletion_insertion import resolve_target

    pixels = picture_pixels(image)
    t = resolve_target(m, pixels, target)
    plan = Plan(pixels)
    plan.add("zero", lambda: np.ones(plan.shape, np.float32))  # the picture itself
    add_explanation_map(plan, heatmap)
    progress = progress if isinstance(progress, Progress) else Progress(progress)
    probs = scores_of(m, plan.run(m, batch_size, progress, message="average drop"), t, "probability")
    return confidence_change(float(probs[0]), float(probs[1]), t)
