"""SmoothGrad: saliency averaged over noisy copies of the input.

Smilkov, Thorat, Kim, Viégas & Wattenberg (2017), "SmoothGrad: removing noise by adding
noise", arXiv:1706.03825.

``samples`` copies ``x + N(0, sigma^2)`` go through one compiled gradient function
in batches of the handle's measured best batch size (:func:`interpret.batching.best_batch_size`);
only running sums over the batch come back from the device. The noise level
is ``sigma / (x_max - x_min)``, as in the paper, where ``x_max - x_min`` is the range of the
*model input* (1 for inputs in 0..1, 2 for -1..1, 255 for raw pixels), so one noise level
means the same thing for every preprocessing. The noise is drawn from a seeded NumPy
generator, so a seed gives the same map every time.

``magnitude`` picks how the per-sample gradients are combined before the maximum over
colour channels:

- ``abs`` (default): mean of ``|grad|``, as tf-keras-vis does;
- ``squared``: mean of ``grad**2`` (SmoothGrad-Squared, Hooker et al. 2019);
- ``plain``: ``|mean grad|``, the paper's average of gradients taken literally, then the absolute value.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import tensorflow as tf

from interpret.batching import best_batch_size
from interpret.explanation import MethodResult
from interpret.gradients import one_hot
from interpret.progress import Progress
from interpret.registry import Method, Param, register
from models.handle import ModelHandle

MAGNITUDES = ("abs", "squared", "plain")


def input_range(m: ModelHandle) -> float:
    """The span of the model input: preprocessing of pixel value 255 minus that of 0."""
    c = m.input_shape[-1]
    ends = m.preprocessing(np.array([[[[0.0] * c]], [[[255.0] * c]]], dtype=np.float32))
    return float(ends.max() - ends.min())


def noise_sigma(noise_level: float, span: float) -> float:
    """Standard deviation of the noise for a level given as a fraction of the input span."""
    return float(noise_level) * float(span)


def noise_batches(
    seed: int, samples: int, shape: tuple[int, ...], sigma: float, batch_size: int
) -> Iterator[np.ndarray]:
    """Gaussian noise (std ``sigma``) for ``samples`` copies, in batches; reproducible by seed.

    Drawn batch by batch to keep memory flat; the stream is the same as one big draw.
    """
    rng = np.random.default_rng(seed)
    for start in range(0, samples, batch_size):
        count = min(batch_size, samples - start)
        yield rng.standard_normal((count, *shape), dtype=np.float32) * np.float32(sigma)


def combine(sums: np.ndarray, count: int, magnitude: str) -> np.ndarray:
    """Running sums (3, H, W, C) of |g|, g**2 and g over ``count`` samples -> (H, W, C) per ``magnitude``."""
    if magnitude not in MAGNITUDES:
        raise ValueError(f"magnitude={magnitude!r}: choose one of {', '.join(MAGNITUDES)}.")
    mean_abs, mean_sq, mean = (s / count for s in sums)
    return {"abs": mean_abs, "squared": mean_sq, "plain": np.abs(mean)}[magnitude]


def smoothgrad_map(combined: np.ndarray) -> np.ndarray:
    """(H, W, C) combined gradients (non-negative) -> (H, W): the largest over channels."""
    return combined.max(axis=-1)


def _noisy_gradient_sums(m: ModelHandle):
    h, w, c = m.input_shape

    def build():
        @tf.function(
            input_signature=[
                tf.TensorSpec([1, h, w, c]),
                tf.TensorSpec([None, h, w, c]),
                tf.TensorSpec([1, m.num_classes]),
            ]
        )
        def sums(x, noise, selector):
            noisy = x + noise
            with tf.GradientTape() as tape:
                tape.watch(noisy)
                logits, _ = m.run(noisy)
                score = tf.reduce_sum(logits * selector, axis=-1)
            g = tape.gradient(score, noisy)
            return tf.stack([tf.reduce_sum(tf.abs(g), 0), tf.reduce_sum(tf.square(g), 0), tf.reduce_sum(g, 0)]), score

        return sums

    return m.cached(("smoothgrad_sums",), build)


def smoothgrad_sums(
    m: ModelHandle,
    x: np.ndarray,
    target: int,
    noise: Iterable[np.ndarray],
    samples: int | None = None,
    progress: Progress | None = None,
) -> tuple[np.ndarray, int]:
    """Sums over the samples of |g|, g**2 and g, shape (3, H, W, C), and the sample count.

    ``g`` is d logit[target] / d input at ``x + n`` for each noise image ``n``; ``noise`` is an
    array (N, H, W, C) or an iterable of such batches, each evaluated as one batch. A pure
    function of the noise: feed it any noise (e.g. tf-keras-vis's) to compare.
    """
    fn = _noisy_gradient_sums(m)
    if isinstance(noise, np.ndarray):
        noise = [noise]
    x_t = tf.constant(np.asarray(x, np.float32).reshape((1, *m.input_shape)))
    selector = tf.constant(one_hot(target, 1, m.num_classes))
    total = np.zeros((3, *m.input_shape), dtype=np.float64)
    done = 0
    for batch in noise:
        part, _ = fn(x_t, tf.constant(batch, tf.float32), selector)
        total += part.numpy()
        done += len(batch)
        if progress is not None and samples:
            progress(done / samples, f"SmoothGrad: {done}/{samples} samples")
    return total, done


def smoothgrad(
    m: ModelHandle,
    x: np.ndarray,
    target: int,
    samples: int = 20,
    noise_level: float = 0.15,
    seed: int = 0,
    magnitude: str = "abs",
    progress: Progress | None = None,
    **_: Any,
) -> MethodResult:
    sigma = noise_sigma(noise_level, input_range(m))
    noise = noise_batches(seed, samples, m.input_shape, sigma, best_batch_size(m))
    total, count = smoothgrad_sums(m, x, target, noise, samples, progress)
    combined = combine(total, count, magnitude).astype(np.float32)
    return MethodResult(smoothgrad_map(combined), {"gradients": combined, "sigma": sigma})


def smoothgrad_passes(params: dict[str, Any], input_shape: tuple[int, int, int]) -> int:
    """One forward+backward pass per noisy copy."""
    return int(params["samples"])


# Defaults: those of ``smoothgrad``'s keyword arguments.
register(
    Method(
        name="smoothgrad",
        title="SmoothGrad",
        fn=smoothgrad,
        paper="Smilkov et al. 2017",
        kind="gradient",
        passes=smoothgrad_passes,
        params=(
            Param("samples", "int", help="Noisy copies averaged (more: smoother, slower).", min=1, max=256, step=1),
            Param(
                "noise_level",
                "float",
                help="Noise standard deviation as a fraction of the model input's range (the paper suggests 0.1-0.2).",
                min=0.0,
                max=1.0,
                step=0.01,
            ),
            Param(
                "seed", "int", help="Seed of the noise: the same seed gives the same map.", min=0, max=2**31 - 1, step=1
            ),
            Param(
                "magnitude",
                "choice",
                help="abs: mean |gradient|; squared: mean gradient² (SmoothGrad²); plain: |mean gradient|.",
                choices=MAGNITUDES,
            ),
        ),
        summary="Saliency averaged over noisy copies of the picture: less speckle, same idea.",
    )
)
