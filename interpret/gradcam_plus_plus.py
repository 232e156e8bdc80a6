"""Grad-CAM++: pixel-weighted gradients for the channel weights.

Chattopadhay, Sarkar, Howlader & Balasubramanian (2018), "Grad-CAM++: Generalized
Gradient-based Visual Explanations for Deep Convolutional Networks", WACV,
arXiv:1710.11063.

With the class score taken as ``Y = exp(S)`` (S the logit), all higher derivatives follow
from the first one ``g = dS/dA`` and the closed form is::

    alpha_ij^k = g_ij^k**2 / (2 g_ij^k**2 + sum_ab A_ab^k * g_ij^k**3)   (0 where g = 0)
    w_k        = sum_ij alpha_ij^k * ReLU(g_ij^k) / sum_ij alpha_ij^k
    map        = ReLU(sum_k w_k A^k)

The division by ``sum_ij alpha_ij^k`` is the per-channel renormalisation of the authors'
released code (adityac94/Grad_CAM_plus_plus), which tf-keras-vis follows too; the formula
as printed in the paper leaves it out (``normalize_alphas=False`` in
:func:`gradcampp_weights`). On random test models the two variants correlate only about
0.9, so we follow the reference code and match tf-keras-vis.

The factor ``exp(S)`` cancels in alpha and multiplies every ``w_k`` alike, so it is left
out: it only rescales the map and would overflow float32 for logits above ~88.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from interpret.explanation import MethodResult
from interpret.gradcam import weighted_map
from interpret.gradients import layer_gradients
from interpret.registry import Method, register
from models.handle import ModelHandle


def gradcampp_alphas(activations: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """(h, w, K) activations and gradients -> (h, w, K) closed-form alphas (0 where undefined)."""
    a = np.asarray(activations, np.float64)
    g = np.asarray(grads, np.float64)
    g2 = g * g
    denominator = 2.0 * g2 + a.sum(axis=(0, 1), keepdims=True) * g2 * g
    ok = (g != 0.0) & (denominator != 0.0)
    return np.where(ok, g2 / np.where(ok, denominator, 1.0), 0.0)


def gradcampp_weights(activations: np.ndarray, grads: np.ndarray, normalize_alphas: bool = True) -> np.ndarray:
    """(K,) channel weights: sum over space of alpha * ReLU(gradient) (alphas renormalised per channel)."""
    alphas = gradcampp_alphas(activations, grads)
    if normalize_alphas:
        total = alphas.sum(axis=(0, 1), keepdims=True)
        alphas = alphas / np.where(total == 0.0, 1.0, total)
    return (alphas * np.maximum(np.asarray(grads, np.float64), 0.0)).sum(axis=(0, 1)).astype(np.float32)


def gradcam_plus_plus(m: ModelHandle, x: np.ndarray, target: int, layer: str | None = None, **_: Any) -> MethodResult:
    layer = layer or m.last_conv_layer
    acts, grads, scores = layer_gradients(m, x, layer, target)
    weights = gradcampp_weights(acts[0], grads[0])
    extras = {"weights": weights, "layer_map_shape": acts.shape[1:3]}
    return MethodResult(weighted_map(acts[0], weights), extras, score=float(scores[0]))


register(
    Method(
        name="gradcam_plus_plus",
        title="Grad-CAM++",
        fn=gradcam_plus_plus,
        paper="Chattopadhay et al. 2018",
        kind="cam",
        uses_layer=True,
        summary="Grad-CAM with pixel-wise weighted positive gradients: better with several instances of a class.",
    )
)
