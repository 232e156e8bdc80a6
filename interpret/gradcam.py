"""Grad-CAM: gradient-weighted class activation mapping.

Selvaraju, Cogswell, Das, Vedantam, Parikh & Batra (2017), "Grad-CAM: Visual
Explanations from Deep Networks via Gradient-based Localization", ICCV, arXiv:1610.02391.

Channel weights are the spatial mean of d logit_c / d A_k (Eq. 1); the map is
ReLU(sum_k w_k A_k) (Eq. 2). Works on any 4-D layer, nested sub-models included.
"""

from __future__ import annotations

import numpy as np

from interpret.explanation import MethodResult
from interpret.gradients import layer_gradients
from interpret.guided_backprop import FAMILY_PASS, plain_and_guided_gradients
from interpret.registry import Method, SharedPass, register
from models.handle import ModelHandle


def gradcam_weights(grads: np.ndarray) -> np.ndarray:
    """(h, w, K) gradients -> (K,) channel weights: global average over space."""
    return grads.mean(axis=(0, 1))


def weighted_map(activations: np.ndarray, weights: np.ndarray, relu: bool = True) -> np.ndarray:
    """sum_k weights_k * A_k over (h, w, K) activations, then ReLU."""
    cam = np.tensordot(activations, weights, axes=([-1], [0]))
    return np.maximum(cam, 0.0) if relu else cam


def gradcam(m: ModelHandle, x: np.ndarray, target: int, layer: str | None = None, **_) -> MethodResult:
    layer = layer or m.last_conv_layer
    acts, grads, scores = layer_gradients(m, x, layer, target)
    weights = gradcam_weights(grads[0])
    extras = {"weights": weights, "layer_map_shape": acts.shape[1:3]}
    return MethodResult(weighted_map(acts[0], weights), extras, score=float(scores[0]))


def gradcam_of_row(out: tuple[np.ndarray, ...], i: int) -> np.ndarray:
    """The Grad-CAM map of row ``i`` of :func:`interpret.guided_backprop.plain_and_guided_gradients`."""
    acts, layer_grads = out[0], out[1]
    return weighted_map(acts[i], gradcam_weights(layer_grads[i]))


register(
    Method(
        name="gradcam",
        title="Grad-CAM",
        fn=gradcam,
        paper="Selvaraju et al. 2017",
        kind="cam",
        uses_layer=True,
        shared_pass=SharedPass(FAMILY_PASS, plain_and_guided_gradients, gradcam_of_row, needs_layer=True),
        summary="Conv feature maps weighted by the average gradient of the class score.",
    )
)
