"""Integrated Gradients.

Sundararajan, Taly & Yan (2017), "Axiomatic Attribution for Deep Networks", ICML,
arXiv:1703.01365.

``IG_i(x) = (x_i - x'_i) * integral_0^1 d F(x' + a (x - x')) / d x_i da``, with the
integral replaced by the **midpoint Riemann sum** over ``steps`` points
``a_k = (k + 1/2) / steps`` (the paper uses the right-hand sum; the midpoint rule has error
O(1/steps^2) and costs exactly ``steps`` gradients). The points are evaluated in batches
(the handle's measured best batch size) through one compiled function that builds the path
on the device and returns only the running sum of gradients.

Completeness (an axiom of the paper): the attributions add up to ``F(x) - F(x')``; the gap
left by the finite sum is reported in ``extras["completeness_gap"]`` (raise ``steps`` if it
is large).

Baselines ``x'``: ``black`` (a black picture run through the model's preprocessing, the
paper's choice), ``zero`` (an all-zero model input), ``blurred`` (the picture under a
Gaussian blur of sigma = a tenth of its shorter side; Sturmfels, Lundberg & Lee 2020).

The heatmap is the **signed** sum of attributions over colour channels (positive: evidence
for the class), so that the heatmap itself sums to the score difference.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import tensorflow as tf

from interpret.batching import best_batch_size
from interpret.explanation import MethodResult
from interpret.gradients import one_hot
from interpret.progress import Progress
from interpret.registry import Method, Param, register
from models.handle import ModelHandle

BASELINES = ("black", "zero", "blurred")
BLUR_FRACTION = 0.1


def midpoint_alphas(steps: int) -> np.ndarray:
    """The ``steps`` midpoints of [0, 1]: (k + 0.5) / steps."""
    if steps < 1:
        raise ValueError(f"steps={steps}: need at least one step.")
    return ((np.arange(steps, dtype=np.float64) + 0.5) / steps).astype(np.float32)


def blurred(image: np.ndarray, fraction: float = BLUR_FRACTION) -> np.ndarray:
    """(H, W, C) image under a Gaussian blur with sigma = ``fraction`` of the shorter side."""
    h, w, c = image.shape
    sigma = max(fraction * min(h, w), 0.5)
    out = cv2.GaussianBlur(
        np.asarray(image, np.float32), (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT
    )
    return out.reshape(h, w, c)


def make_baseline(m: ModelHandle, x: np.ndarray, kind: str) -> np.ndarray:
    """The baseline x' (H, W, C) in model-input space for a prepared image x (H, W, C)."""
    if kind == "black":
        return m.preprocessing(np.zeros((1, *x.shape), np.float32))[0]
    if kind == "zero":
        return np.zeros_like(x, dtype=np.float32)
    if kind == "blurred":
        return blurred(x)  # a blur commutes with the per-channel affine preprocessing
    raise ValueError(f"baseline={kind!r}: choose one of {', '.join(BASELINES)}.")


def attributions(x: np.ndarray, baseline: np.ndarray, mean_gradients: np.ndarray) -> np.ndarray:
    """(x - x') * average path gradient, elementwise."""
    return (np.asarray(x, np.float32) - baseline) * mean_gradients


def attribution_map(attr: np.ndarray) -> np.ndarray:
    """(H, W, C) attributions -> (H, W): signed sum over channels."""
    return attr.sum(axis=-1)


def _path_gradient_sum(m: ModelHandle):
    h, w, c = m.input_shape

    def build():
        @tf.function(
            input_signature=[
                tf.TensorSpec([1, h, w, c]),
                tf.TensorSpec([1, h, w, c]),
                tf.TensorSpec([None]),
                tf.TensorSpec([1, m.num_classes]),
            ]
        )
        def path_sum(x, baseline, alphas, selector):
            points = baseline + alphas[:, None, None, None] * (x - baseline)
            with tf.GradientTape() as tape:
                tape.watch(points)
                logits, _ = m.run(points)
                score = tf.reduce_sum(logits * selector, axis=-1)
            return tf.reduce_sum(tape.gradient(score, points), axis=0), score

        return path_sum

    return m.cached(("ig_path_sum",), build)


def path_gradients(
    m: ModelHandle,
    x: np.ndarray,
    baseline: np.ndarray,
    target: int,
    alphas: np.ndarray,
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> np.ndarray:
    """Mean over ``alphas`` of d logit[target] / d input at x' + a (x - x'), shape (H, W, C)."""
    fn = _path_gradient_sum(m)
    batch_size = batch_size or best_batch_size(m)
    shape = (1, *m.input_shape)
    x_t = tf.constant(np.asarray(x, np.float32).reshape(shape))
    b_t = tf.constant(np.asarray(baseline, np.float32).reshape(shape))
    selector = tf.constant(one_hot(target, 1, m.num_classes))
    total = np.zeros(m.input_shape, dtype=np.float64)
    n = len(alphas)
    for start in range(0, n, batch_size):
        part, _ = fn(x_t, b_t, tf.constant(alphas[start : start + batch_size], tf.float32), selector)
        total += part.numpy()
        if progress is not None:
            done = min(start + batch_size, n)
            progress(done / n, f"Integrated Gradients: {done}/{n} steps")
    return (total / n).astype(np.float32)


def integrated_gradients(
    m: ModelHandle,
    x: np.ndarray,
    target: int,
    steps: int = 32,
    baseline: str = "black",
    progress: Progress | None = None,
    **_: Any,
) -> MethodResult:
    image = np.asarray(x, np.float32).reshape(m.input_shape)
    base = make_baseline(m, image, baseline)
    grads = path_gradients(m, image, base, target, midpoint_alphas(steps), progress=progress)
    attr = attributions(image, base, grads)
    ends = m.logits(np.stack([image, base]), prepared=True)[:, target]
    delta = float(ends[0] - ends[1])
    return MethodResult(
        attribution_map(attr),
        {
            "attributions": attr,
            "score_difference": delta,
            "completeness_gap": float(attr.sum(dtype=np.float64)) - delta,
        },
    )


def integrated_gradients_passes(params: dict[str, Any], input_shape: tuple[int, int, int]) -> int:
    """One forward+backward pass per point on the path.

    Not counted: the one forward pass of the picture and the baseline (two images) that
    measures the completeness gap.
    """
    return int(params["steps"])


# Defaults: those of ``integrated_gradients``'s keyword arguments.
register(
    Method(
        name="integrated_gradients",
        title="Integrated Gradients",
        fn=integrated_gradients,
        paper="Sundararajan et al. 2017",
        kind="gradient",
        signed=True,
        passes=integrated_gradients_passes,
        params=(
            Param("steps", "int", help="Points on the path from the baseline to the picture.", min=1, max=512, step=1),
            Param(
                "baseline",
                "choice",
                help="black: a black picture; zero: an all-zero model input; blurred: the picture, heavily blurred.",
                choices=BASELINES,
            ),
        ),
        summary="Gradients summed along a path from a baseline to the picture: attributions add up to the score change.",
    )
)
