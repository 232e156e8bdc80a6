"""Deletion and insertion curves.

Petsiuk, Das & Saenko (2018), "RISE: Randomized Input Sampling for Explanation of
Black-box Models", BMVC, arXiv:1806.07421 (Sec. 4.1, "causal metrics").

The pixels of the picture passed in are ranked by the heatmap, highest first (a signed
map: strongest evidence *for* the class first; ties keep reading order). With ``steps``
steps, step ``k`` (0..steps) touches the top ``round(k / steps * pixels)`` of them:

- **deletion**: those pixels are removed (replaced by the substrate, black by default).
  A faithful map makes the target's score fall fast: **lower AUC is better**;
- **insertion**: only those pixels are kept and the rest is the substrate (the blurred
  picture by default). A faithful map makes the score rise fast: **higher AUC is better**.

The :class:`Curve` holds the fraction of pixels touched at each step (0..1), the target's
score there (its probability, or its logit with ``score="logit"``), and the area under
the curve by the trapezoid rule over the fractions. All ``steps + 1`` copies go through
the model in batches at the handle's best batch size (:mod:`interpret.metrics.perturb`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from interpret.metrics.perturb import Plan, check_score, map_for, picture_pixels, pixel_ranks, scores_of
from interpret.progress import Progress
from models.handle import ModelHandle
from models.preprocessing import as_batch

KINDS = ("deletion", "insertion")
MAX_STEPS = 1000


@dataclass
class Curve:
    """A deletion or insertion curve: ``scores[k]`` with ``fractions[k]`` of the pixels removed (or kept)."""

    fractions: np.ndarray  # (steps + 1,) float64, 0 .. 1
    scores: np.ndarray  # (steps + 1,) float64: the target's probability or logit
    auc: float  # trapezoid over fractions 0..1
    kind: str = "deletion"  # "deletion" | "insertion"
    substrate: str = "zero"
    score: str = "probability"
    target: int = 0


def step_counts(pixels: int, steps: int) -> np.ndarray:
    """How many pixels each step touches: round(k / steps * pixels) for k = 0..steps."""
    steps = int(steps)
    if not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"steps={steps}: must be between 1 and {MAX_STEPS}.")
    return np.rint(np.arange(steps + 1) * pixels / steps).astype(np.int64)


def auc(fractions: np.ndarray, scores: np.ndarray) -> float:
    """Area under the curve by the trapezoid rule."""
    f = np.asarray(fractions, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    return float(np.sum((f[1:] - f[:-1]) * (s[1:] + s[:-1]) / 2.0))


@dataclass
class CurveRows:
    """Where one curve's rows sit in a :class:`~interpret.metrics.perturb.Plan`."""

    kind: str
    substrate: str
    rows: list[int]
    fractions: np.ndarray

    def curve(self, m: ModelHandle, logits: np.ndarray, target: int, score: str) -> Curve:
        scores = scores_of(m, logits[self.rows], target, score)
        return Curve(self.fractions, scores, auc(self.fractions, scores), self.kind, self.substrate, score, target)


def add_curve(plan: Plan, heatmap: np.ndarray, kind: str, steps: int = 20, substrate: str | None = None) -> CurveRows:
    """Add the ``steps + 1`` copies of a deletion or insertion curve to ``plan``."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}: choose deletion or insertion.")
    substrate = substrate or ("zero" if kind == "deletion" else "blur")
    ranks = pixel_ranks(map_for(heatmap, plan.shape))
    counts = step_counts(ranks.size, steps)
    rows = []
    for n in counts:
        if kind == "deletion":
            rows.append(plan.add(substrate, lambda n=n: ranks >= n))  # the top n are removed
        else:
            rows.append(plan.add(substrate, lambda n=n: ranks < n))  # only the top n are kept
    return CurveRows(kind, substrate, rows, counts / ranks.size)


def resolve_target(m: ModelHandle, pixels: np.ndarray, target: int | str | None) -> int:
    """The class the curves follow: ``target`` (index or name), or the model's top-1 for the picture."""
    from interpret.core import resolve_target as resolve

    logits = m.logits(as_batch(pixels / 255.0)) if target is None else None
    return resolve(m, target, None if logits is None else logits[0])


def _curve(
    kind: str,
    m: ModelHandle,
    image: np.ndarray,
    heatmap: np.ndarray,
    target: int | str | None,
    steps: int,
    substrate: str,
    score: str,
    blur_sigma: float | None,
    batch_size: int | None,
    progress: Callable[[float, str], None] | Progress | None,
) -> Curve:
    check_score(score)
    progress = progress if isinstance(progress, Progress) else Progress(progress)
    pixels = picture_pixels(image)
    t = resolve_target(m, pixels, target)
    plan = Plan(pixels, blur_sigma)
    rows = add_curve(plan, heatmap, kind, steps, substrate)
    logits = plan.run(m, batch_size, progress, message=f"{kind} curve")
    return rows.curve(m, logits, t, score)


def deletion(
    m: ModelHandle,
    image: np.ndarray,
    heatmap: np.ndarray,
    target: int | str | None = None,
    steps: int = 20,
    substrate: str = "zero",
    score: str = "probability",
    blur_sigma: float | None = None,
    batch_size: int | None = None,
    progress: Callable[[float, str], None] | Progress | None = None,
) -> Curve:
    """The deletion curve of ``heatmap`` (H, W) over ``image``: lower AUC is better."""
    return _curve("deletion", m, image, heatmap, target, steps, substrate, score, blur_sigma, batch_size, progress)


def insertion(
    m: ModelHandle,
    image: np.ndarray,
    heatmap: np.ndarray,
    target: int | str | None = None,
    steps: int = 20,
    substrate: str = "blur",
    score: str = "probability",
    blur_sigma: float | None = None,
    batch_size: int | None = None,
    progress: Callable[[float, str], None] | Progress | None = None,
) -> Curve:
    """The insertion curve of ``heatmap`` (H, W) over ``image``: higher AUC is better."""
    return _curve("insertion", m, image, heatmap, target, steps, substrate, score, blur_sigma, batch_size, progress)


def deletion_insertion(
    m: ModelHandle,
    image: np.ndarray,
    heatmap: np.ndarray,
    target: int | str | None = None,
    steps: int = 20,
    deletion_substrate: str = "zero",
    insertion_substrate: str = "blur",
    score: str = "probability",
    blur_sigma: float | None = None,
    batch_size: int | None = None,
    progress: Callable[[float, str], None] | Progress | None = None,
) -> tuple[Curve, Curve]:
    """Both curves of one map from one stream of ``2 * (steps + 1)`` copies (full batches: the 42-pass floor at 20 steps)."""
    return deletion_insertion_maps(
        m,
        image,
        [heatmap],
        [target],
        steps,
        deletion_substrate,
        insertion_substrate,
        score,
        blur_sigma,
        batch_size,
        progress,
    )[0]


def deletion_insertion_maps(
    m: ModelHandle,
    image: np.ndarray,
    heatmaps: Sequence[np.ndarray],
    targets: Sequence[int | str | None],
    steps: int = 20,
    deletion_substrate: str = "zero",
    insertion_substrate: str = "blur",
    score: str = "probability",
    blur_sigma: float | None = None,
    batch_size: int | None = None,
    progress: Callable[[float, str], None] | Progress | None = None,
) -> list[tuple[Curve, Curve]]:
    """Both curves for each of several maps of one picture, map ``i`` following class ``targets[i]``.

    One stream of ``len(heatmaps) * 2 * (steps + 1)`` copies, in full batches (the Compare
    page's row of AUCs: every panel of the grid at once).
    """
    if len(heatmaps) != len(targets):
        raise ValueError(f"{len(heatmaps)} heatmaps but {len(targets)} targets: give one target per map.")
    if not len(heatmaps):
        return []
    check_score(score)
    progress = progress if isinstance(progress, Progress) else Progress(progress)
    pixels = picture_pixels(image)
    classes = [resolve_target(m, pixels, t) for t in targets]
    plan = Plan(pixels, blur_sigma)
    rows = [
        (
            add_curve(plan, heat, "deletion", steps, deletion_substrate),
            add_curve(plan, heat, "insertion", steps, insertion_substrate),
        )
        for heat in heatmaps
    ]
    maps = f" of {len(heatmaps)} maps" if len(heatmaps) > 1 else ""
    logits = plan.run(m, batch_size, progress, message=f"deletion and insertion curves{maps}")
    return [
        (d.curve(m, logits, t, score), i.curve(m, logits, t, score)) for (d, i), t in zip(rows, classes, strict=True)
    ]
