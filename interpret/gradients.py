"""Compiled gradients of a target logit, shared by the gradient methods.

Each (model, layer) pair is traced once into a ``tf.function`` and cached on the model
handle, so after the first call a method costs one forward and one backward pass.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from models.handle import ModelHandle


def one_hot(targets: int | np.ndarray, n: int, k: int) -> np.ndarray:
    t = np.broadcast_to(np.asarray(targets, dtype=np.int64), (n,))
    return np.eye(k, dtype=np.float32)[t]


def _input_grad_fn(m: ModelHandle, override_key: str | None = None, override=None):
    h, w, c = m.input_shape

    def build():
        @tf.function(input_signature=[tf.TensorSpec([None, h, w, c]), tf.TensorSpec([None, m.num_classes])])
        def grad(x, selector):
            with tf.GradientTape() as tape:
                tape.watch(x)
                logits, _ = m.run(x, override=override)
                score = tf.reduce_sum(logits * selector, axis=-1)
            return tape.gradient(score, x), score

        return grad

    return m.cached(("input_grad", override_key), build)


def input_gradients(
    m: ModelHandle, x: np.ndarray, targets: int | np.ndarray, override_key: str | None = None, override=None
) -> tuple[np.ndarray, np.ndarray]:
    """d logit[target] / d x for a prepared batch x: (gradients like x, scores (N,)).

    ``override`` (see ``graph.run``) swaps layers, e.g. ReLUs for guided ReLUs; its compiled
    function is cached under ``override_key``, which must then name it.
    """
    if override is not None and override_key is None:
        raise ValueError("input_gradients: an override needs an override_key to cache its compiled function under.")
    fn = _input_grad_fn(m, override_key, override)
    g, s = fn(tf.constant(x, tf.float32), tf.constant(one_hot(targets, len(x), m.num_classes)))
    return g.numpy(), s.numpy()


def layer_gradients(
    m: ModelHandle, x: np.ndarray, layer: str, targets: int | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Activations A of ``layer``, d logit[target] / d A, and the scores, for a prepared batch."""
    h, w, c = m.input_shape

    def build():
        @tf.function(input_signature=[tf.TensorSpec([None, h, w, c]), tf.TensorSpec([None, m.num_classes])])
        def grad(x, selector):
            with tf.GradientTape() as tape:
                tape.watch(x)  # a frozen base has no trainable variables to record through
                logits, tapped = m.run(x, taps=(layer,))
                acts = tapped[layer]
                score = tf.reduce_sum(logits * selector, axis=-1)
            return acts, tape.gradient(score, acts), score

        return grad

    fn = m.cached(("layer_grad", layer), build)
    a, g, s = fn(tf.constant(x, tf.float32), tf.constant(one_hot(targets, len(x), m.num_classes)))
    return a.numpy(), g.numpy(), s.numpy()
