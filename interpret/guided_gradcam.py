"""Guided Grad-CAM: guided backprop sharpened by where Grad-CAM points.

Selvaraju, Cogswell, Das, Vedantam, Parikh & Batra (2017), "Grad-CAM: Visual
Explanations from Deep Networks via Gradient-based Localization", ICCV, arXiv:1610.02391,
section "Guided Grad-CAM".

The guided-backprop gradient (Springenberg et al. 2015; :mod:`interpret.guided_backprop`)
is multiplied pixel by pixel with the Grad-CAM map of the chosen layer, bilinearly
upsampled to the model's input size. The heatmap is ``|guided gradient| * Grad-CAM``,
the largest over colour channels; ``extras["gradients"]`` holds the RGB product.

Both come from **one** compiled function and one forward pass: the ReLU guidance is an
identity whose backward rule is switched on only for the second ``tape.gradient`` (the
guided one, to the input), so the first (plain, to the layer) is ordinary Grad-CAM.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from interpret.explanation import MethodResult
from interpret.gradcam import gradcam_of_row, gradcam_weights, weighted_map
from interpret.gradients import one_hot
from interpret.guided_backprop import FAMILY_PASS, guided_override, make_guided_identity, plain_and_guided_gradients
from interpret.registry import Method, SharedPass, register
from interpret.saliency import saliency_map
from models.handle import ModelHandle
from models.preprocessing import resize_map


def guided_gradcam_product(guided: np.ndarray, cam: np.ndarray) -> np.ndarray:
    """(H, W, C) guided gradients times a (h, w) Grad-CAM map upsampled to (H, W)."""
    h, w = guided.shape[:2]
    return guided * resize_map(cam, h, w)[..., None]


def _guided_and_layer_gradients(m: ModelHandle, layer: str):
    h, w, c = m.input_shape

    def build():
        guiding = {"on": False}
        override = guided_override(make_guided_identity(lambda: guiding["on"]))

        @tf.function(input_signature=[tf.TensorSpec([None, h, w, c]), tf.TensorSpec([None, m.num_classes])])
        def grads(x, selector):
            with tf.GradientTape(persistent=True) as tape:
                tape.watch(x)
                logits, tapped = m.run(x, taps=(layer,), override=override)
                score = tf.reduce_sum(logits * selector, axis=-1)
            acts = tapped[layer]
            guiding["on"] = False
            layer_grads = tape.gradient(score, acts)
            guiding["on"] = True
            input_grads = tape.gradient(score, x)
            guiding["on"] = False
            del tape
            return acts, layer_grads, input_grads, score

        return grads

    return m.cached(("guided_gradcam", layer), build)


def guided_and_layer_gradients(
    m: ModelHandle, x: np.ndarray, layer: str, targets: int | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Activations of ``layer``, plain gradients there, guided gradients at the input, scores."""
    fn = _guided_and_layer_gradients(m, layer)
    out = fn(tf.constant(x, tf.float32), tf.constant(one_hot(targets, len(x), m.num_classes)))
    return tuple(t.numpy() for t in out)  # type: ignore[return-value]


def guided_gradcam(m: ModelHandle, x: np.ndarray, target: int, layer: str | None = None, **_: Any) -> MethodResult:
    layer = layer or m.last_conv_layer
    acts, layer_grads, guided, scores = guided_and_layer_gradients(m, x, layer, target)
    cam = weighted_map(acts[0], gradcam_weights(layer_grads[0]))
    product = guided_gradcam_product(guided[0], cam)
    return MethodResult(saliency_map(product), {"gradients": product, "gradcam": cam}, score=float(scores[0]))


def guided_gradcam_of_row(out: tuple[np.ndarray, ...], i: int) -> np.ndarray:
    """The guided Grad-CAM map of row ``i`` of :func:`interpret.guided_backprop.plain_and_guided_gradients`."""
    return saliency_map(guided_gradcam_product(out[2][i], gradcam_of_row(out, i)))


register(
    Method(
        name="guided_gradcam",
        title="Guided Grad-CAM",
        fn=guided_gradcam,
        paper="Selvaraju et al. 2017",
        kind="gradient",
        uses_layer=True,
        shared_pass=SharedPass(FAMILY_PASS, plain_and_guided_gradients, guided_gradcam_of_row, needs_layer=True),
        summary="Guided backprop's fine detail, kept only where Grad-CAM finds the class.",
    )
)
