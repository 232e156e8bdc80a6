"""Vanilla-gradient saliency.

Simonyan, Vedaldi & Zisserman (2014), "Deep Inside Convolutional Networks: Visualising
Image Classification Models and Saliency Maps", ICLR workshop, arXiv:1312.6034.

The map is |d logit_c / d x|, the largest over colour channels (Sec. 3.1).
"""

from __future__ import annotations

import numpy as np

from interpret.explanation import MethodResult
from interpret.gradients import input_gradients
from interpret.registry import Method, SharedPass, register
from models.handle import ModelHandle


def saliency_map(gradients: np.ndarray) -> np.ndarray:
    """(H, W, C) gradients -> (H, W) saliency: absolute value, max over channels."""
    return np.abs(gradients).max(axis=-1)


def saliency(m: ModelHandle, x: np.ndarray, target: int, **_) -> MethodResult:
    grads, scores = input_gradients(m, x, target)
    return MethodResult(saliency_map(grads[0]), {"gradients": grads[0]}, score=float(scores[0]))


def gradients_for_targets(m: ModelHandle, x: np.ndarray, targets: list[int], layer, params, progress) -> np.ndarray:
    """Input gradients (T, H, W, C) of every target's logit: one batched pass, one row per target."""
    grads, _ = input_gradients(m, np.repeat(x, len(targets), axis=0), np.asarray(targets))
    return grads


register(
    Method(
        name="saliency",
        title="Saliency (vanilla gradient)",
        fn=saliency,
        paper="Simonyan et al. 2014",
        kind="gradient",
        shared_pass=SharedPass("input gradients", gradients_for_targets, lambda grads, i: saliency_map(grads[i])),
        summary="How much each pixel's change would move the class score: |d logit / d x|.",
    )
)
