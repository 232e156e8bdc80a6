"""How alike two heatmaps are: the measures of Adebayo et al.'s sanity checks.

Adebayo, Gilmer, Muelly, Goodfellow, Hardt & Kim (2018), "Sanity checks for saliency
maps", NeurIPS, arXiv:1810.03292 (Sec. 3, "similarity metrics"):

- **Spearman rank correlation** of the two maps' values (``scipy.stats.spearmanr``), and of
  their absolute values (a map whose sign flips but whose shape stays counts as similar);
- **SSIM** (``skimage.metrics.structural_similarity``) of the two maps, each scaled to 0..1;
- **HOG similarity**: the Pearson correlation of the two maps' histograms of oriented
  gradients (``skimage.feature.hog``), each map scaled to 0..1.

A correlation that is undefined (a constant map has no ranking and no gradients) is 0.
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from skimage.feature import hog
from skimage.metrics import structural_similarity


def unit_range(a: np.ndarray) -> np.ndarray:
    """Min-max scaled to 0..1 (a constant map becomes all zeros)."""
    a = np.asarray(a, dtype=np.float64)
    span = float(np.ptp(a)) if a.size else 0.0
    return (a - a.min()) / span if span > 0 else np.zeros_like(a)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho of two maps' values (flattened); 0 when either is constant."""
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"The maps differ in size: {np.shape(a)} and {np.shape(b)}.")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    rho = stats.spearmanr(x, y).statistic
    return float(rho) if np.isfinite(rho) else 0.0


def ssim_window(shape: tuple[int, ...]) -> int:
    """skimage's default 7-pixel window, made smaller (and odd) for maps under 7 pixels."""
    side = min(7, int(min(shape[:2])))
    return side if side % 2 else side - 1


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of the two maps, each scaled to 0..1 (``data_range=1``)."""
    x, y = unit_range(a), unit_range(b)
    if x.shape != y.shape:
        raise ValueError(f"The maps differ in size: {np.shape(a)} and {np.shape(b)}.")
    win = ssim_window(x.shape)
    if win < 3:
        return float(np.array_equal(x, y))
    return float(structural_similarity(x, y, data_range=1.0, win_size=win))


def hog_cell(shape: tuple[int, ...]) -> int:
    """HOG cell side: a 16th of the shorter side, at least 2 pixels (14 px at 224, 2 px at 28)."""
    return max(2, int(min(shape[:2])) // 16)


def hog_features(a: np.ndarray) -> np.ndarray:
    cell = hog_cell(np.shape(a))
    return hog(unit_range(a), orientations=9, pixels_per_cell=(cell, cell), cells_per_block=(2, 2), feature_vector=True)


def hog_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of the maps' HOG features; 0 when either has no gradients."""
    if np.shape(a) != np.shape(b):
        raise ValueError(f"The maps differ in size: {np.shape(a)} and {np.shape(b)}.")
    if min(np.shape(a)[:2]) < 2 * hog_cell(np.shape(a)):
        return 0.0  # too small for one HOG block
    x, y = hog_features(a), hog_features(b)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])
