"""Guided backpropagation.

Springenberg, Dosovitskiy, Brox & Riedmiller (2015), "Striving for Simplicity: The All
Convolutional Net", ICLR workshop, arXiv:1412.6806 (the "guided backpropagation" section and its figure).

At every ReLU the backward signal is masked twice: by where the forward input was
positive (ordinary backprop) and by where the incoming gradient is positive (the
"guidance"): ``R_l = 1[f_l > 0] * 1[R_{l+1} > 0] * R_{l+1}``.

How it is done here, without touching the user's model: ``ModelHandle.run`` accepts an
``override(path, layer)``. Every ReLU-like layer (``keras.layers.ReLU`` including ReLU6
and ``max_value``, ``Activation("relu"/"relu6")``, and any Conv2D / Dense /
DepthwiseConv2D / SeparableConv2D / ... with a fused ``relu`` or ``relu6`` activation)
is called as it is, and its output goes through :func:`guided_identity`: the identity
forward, ``max(dy, 0)`` backward. The layer's own ReLU gradient then supplies the
``1[f_l > 0]`` (ReLU6: ``1[0 < f_l < 6]``) factor, so the product is exactly the guided
rule. Unlike swapping in a linear twin of each fused layer, this copies no weights (VGG16's
fully connected ReLU layers alone hold 120 M parameters) and needs no rebuilt layers.

The heatmap is ``|guided gradient|``, the largest over colour channels (like saliency);
the RGB guided gradient itself is in ``extras["gradients"]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from interpret.explanation import MethodResult
from interpret.gradients import input_gradients
from interpret.registry import Method, SharedPass, register
from interpret.saliency import saliency_map
from models import graph
from models.handle import ModelHandle

RELU_ACTIVATIONS = frozenset({"relu", "relu6"})


def is_relu_like(layer: keras.layers.Layer) -> bool:
    """True for a layer whose output passes through a ReLU (standalone or fused)."""
    if graph.is_container(layer):
        return False
    if isinstance(layer, keras.layers.ReLU):
        return True
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", None) in RELU_ACTIVATIONS


def positive_gradient(dy: tf.Tensor) -> tf.Tensor:
    """The guidance: only positive gradients flow back."""
    return tf.nn.relu(dy)


def make_guided_identity(enabled: Callable[[], bool] = lambda: True) -> Callable[[tf.Tensor], tf.Tensor]:
    """Identity forward; backward ``max(dy, 0)`` while ``enabled()``, plain ``dy`` otherwise.

    ``enabled`` is read when the gradient is built (at ``tape.gradient`` time, also while
    tracing a ``tf.function``), which lets one forward pass serve a plain and a guided
    backward pass (see :mod:`interpret.guided_gradcam`).
    """

    @tf.custom_gradient
    def guided_identity(y: tf.Tensor):
        def grad(dy: tf.Tensor) -> tf.Tensor:
            return positive_gradient(dy) if enabled() else dy

        return tf.identity(y), grad

    return guided_identity


guided_identity = make_guided_identity()


def guided_override(identity: Callable[[tf.Tensor], tf.Tensor] = guided_identity) -> graph.Override:
    """An override for ``ModelHandle.run`` that guides every ReLU-like layer."""

    def override(path: str, layer: keras.layers.Layer) -> Callable[..., Any] | None:
        if not is_relu_like(layer):
            return None
        call = graph._with_inference_mode(layer)

        def guided(*args: Any, **kwargs: Any) -> Any:
            return identity(call(*args, **kwargs))

        return guided

    return override


def guided_gradients(m: ModelHandle, x: np.ndarray, targets: int | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Guided-backprop gradients of logit[target] w.r.t. a prepared batch x, and the scores."""
    return input_gradients(m, x, targets, override_key="guided_backprop", override=guided_override())


def guided_backprop(m: ModelHandle, x: np.ndarray, target: int, **_: Any) -> MethodResult:
    grads, scores = guided_gradients(m, x, target)
    return MethodResult(saliency_map(grads[0]), {"gradients": grads[0]}, score=float(scores[0]))


def plain_and_guided_gradients(
    m: ModelHandle, x: np.ndarray, targets: list[int], layer: str, params: dict, progress
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For every target at once (one row each): activations of ``layer``, plain gradients there,
    guided gradients at the input, scores -- from one forward pass, a plain backward pass to
    the layer and a guided one to the input.

    The shared run of guided backprop, Grad-CAM and guided Grad-CAM (``FAMILY_PASS``); the
    compiled function is :func:`interpret.guided_gradcam.guided_and_layer_gradients`.
    """
    from interpret.guided_gradcam import guided_and_layer_gradients  # here: guided_gradcam imports this module

    return guided_and_layer_gradients(m, np.repeat(x, len(targets), axis=0), layer, np.asarray(targets))


# The key under which guided backprop, Grad-CAM and guided Grad-CAM share one run.
FAMILY_PASS = "plain and guided gradients"

register(
    Method(
        name="guided_backprop",
        title="Guided backprop",
        fn=guided_backprop,
        paper="Springenberg et al. 2015",
        kind="gradient",
        shared_pass=SharedPass(
            FAMILY_PASS, plain_and_guided_gradients, lambda out, i: saliency_map(out[2][i]), needs_layer=True
        ),
        summary="Gradient where only positive signals pass back through each ReLU: sharp, edge-like detail.",
    )
)
