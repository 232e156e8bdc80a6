"""CAM: class activation mapping.

Zhou, Khosla, Lapedriza, Oliva & Torralba (2016), "Learning Deep Features for
Discriminative Localization", CVPR, arXiv:1512.04150.

CAM needs a network that ends ``conv features A -> GlobalAveragePooling2D -> (Dropout)
-> Dense``. Then ``logit_c = sum_k w_{k,c} mean_ij A_ij^k + b_c`` and the class
activation map is ``M_c(i, j) = sum_k w_{k,c} A_ij^k``: no gradients, only the
Dense weights of the class. The map is kept **signed**, as in the paper (negative: evidence
against the class); its mean is the class logit minus the bias.

For such a network CAM and Grad-CAM agree: Grad-CAM's channel weights are
``w_{k,c} / (h w)``, so ``ReLU(CAM) = h w * Grad-CAM``.

The structure is found by tracing which layer feeds which (through nested sub-models, e.g.
a ``keras.applications`` base with ``pooling="avg"`` or a GAP layer after it). Any other
model raises :class:`CAMNotApplicable` with a message pointing to Grad-CAM. For a binary
sigmoid model the two logits are ``-z/2, z/2`` (see ``ModelHandle``), so the weights are
``-w/2`` and ``w/2``.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from interpret.explanation import MethodResult
from interpret.registry import Method, register
from models import graph
from models.handle import ModelHandle

PASS_THROUGH = (
    keras.layers.Dropout,
    keras.layers.SpatialDropout1D,
    keras.layers.GaussianDropout,
    keras.layers.GaussianNoise,
    keras.layers.AlphaDropout,
    keras.layers.ActivityRegularization,
    keras.layers.Identity,
)


class CAMNotApplicable(ValueError):
    """The model does not end in global average pooling followed by the output Dense layer."""


def layer_inputs(model: keras.Model) -> dict[str, list[str]]:
    """For every (non-container) layer path, the paths of the layers that feed it, through nesting."""
    made: dict[int, tuple[str, Any]] = {}
    inputs_of: dict[str, list[str]] = {}

    def override(path: str, layer: keras.layers.Layer):
        if graph.is_container(layer):
            return None
        call = graph._with_inference_mode(layer)

        def recorded(*args: Any, **kwargs: Any) -> Any:
            sources = [made[id(t)][0] for t in keras.tree.flatten((args, kwargs)) if id(t) in made]
            out = call(*args, **kwargs)
            inputs_of[path] = sources
            for t in keras.tree.flatten(out):
                made[id(t)] = (path, t)  # keep t alive so its id stays unique
            return out

        return recorded

    graph.run(model, keras.Input(shape=model.input_shape[1:]), override=override)
    return inputs_of


def _is_linear_activation(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, keras.layers.Activation) and getattr(layer.activation, "__name__", "") == "linear"


def _is_squashing(layer: keras.layers.Layer) -> bool:
    if isinstance(layer, keras.layers.Softmax):
        return True
    return isinstance(layer, keras.layers.Activation) and getattr(layer.activation, "__name__", "") in (
        "softmax",
        "sigmoid",
    )


def cam_structure(model: keras.Model) -> tuple[str, str]:
    """(path of the feature layer, path of the output Dense layer) for a GAP + Dense model.

    Raises :class:`CAMNotApplicable` naming what was found instead.
    """
    inputs_of = layer_inputs(model)

    def only_source(path: str) -> str:
        sources = inputs_of.get(path, [])
        if len(sources) != 1:
            raise CAMNotApplicable(
                f"CAM needs a single chain conv features -> GlobalAveragePooling2D -> Dense at the end of the "
                f"model, but {path!r} has {len(sources)} inputs; use Grad-CAM instead."
            )
        return sources[0]

    dense_path = graph.output_layer_path(model)
    dense = graph.find_layer(model, dense_path)
    if _is_squashing(dense):
        dense_path = only_source(dense_path)
        dense = graph.find_layer(model, dense_path)
    if not isinstance(dense, keras.layers.Dense):
        raise CAMNotApplicable(
            f"CAM needs the model to end in a Dense layer after global average pooling; its last layer "
            f"{dense_path!r} is a {type(dense).__name__}. Use Grad-CAM instead."
        )
    path = only_source(dense_path)
    layer = graph.find_layer(model, path)
    while isinstance(layer, PASS_THROUGH) or _is_linear_activation(layer):
        path = only_source(path)
        layer = graph.find_layer(model, path)
    if not isinstance(layer, keras.layers.GlobalAveragePooling2D) or layer.keepdims:
        raise CAMNotApplicable(
            f"CAM needs GlobalAveragePooling2D right before the output Dense layer {dense_path!r}; "
            f"found {type(layer).__name__} ({path!r}). Use Grad-CAM instead, which works on any conv layer."
        )
    return only_source(path), dense_path


def cam_weights(kernel: np.ndarray, target: int, head_kind: str) -> np.ndarray:
    """(K,) weights of class ``target`` in logit space from a Dense kernel (K, units)."""
    kernel = np.asarray(kernel, np.float32)
    if head_kind == "sigmoid":  # one unit z shown as logits [-z/2, z/2]
        return kernel[:, 0] * (0.5 if target == 1 else -0.5)
    return kernel[:, target]


def cam_map(activations: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """sum_k weights_k A_k over (h, w, K) activations: the signed class activation map."""
    return np.tensordot(activations, weights, axes=([-1], [0]))


def _structure(m: ModelHandle) -> tuple[str, str] | CAMNotApplicable:
    def build() -> tuple[str, str] | CAMNotApplicable:
        try:
            return cam_structure(m.model)
        except CAMNotApplicable as err:
            return err

    return m.cached(("cam_structure",), build)


def feature_layer(m: ModelHandle) -> str:
    """Path of the conv features CAM uses; :class:`CAMNotApplicable` if the model does not fit."""
    found = _structure(m)
    if isinstance(found, CAMNotApplicable):
        raise CAMNotApplicable(f"{m.name}: {found}")
    return found[0]


def cam(m: ModelHandle, x: np.ndarray, target: int, **_: Any) -> MethodResult:
    features = feature_layer(m)
    _, dense_path = _structure(m)
    h, w, c = m.input_shape

    def build():
        @tf.function(input_signature=[tf.TensorSpec([None, h, w, c])])
        def forward(batch):
            logits, tapped = m.run(batch, taps=(features,))
            return tapped[features], logits

        return forward

    acts, logits = m.cached(("cam_features", features), build)(tf.constant(x, tf.float32))
    acts = acts.numpy()[0]
    weights = cam_weights(keras.ops.convert_to_numpy(m.layer(dense_path).kernel), target, m.head.kind)
    extras = {"layer": features, "weights": weights}
    return MethodResult(cam_map(acts, weights), extras, score=float(logits.numpy()[0, target]))


register(
    Method(
        name="cam",
        title="CAM",
        fn=cam,
        paper="Zhou et al. 2016",
        kind="cam",
        signed=True,
        backward=False,  # one forward pass: the Dense weights replace the gradients
        summary="Last conv maps weighted by the class's Dense weights (models ending in global average pooling + Dense).",
    )
)
