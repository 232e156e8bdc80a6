"""Many forward passes, batched: the shared engine of the perturbation methods.

Occlusion, Score-CAM and LIME all score one picture under many perturbations. Their
floor is N forward passes at the best batch size, so the perturbed inputs are built
one batch at a time (never all at once: 5000 copies of a 224x224 picture would not fit
in memory), inside one compiled ``tf.function`` per model handle and method, traced once
for any batch size (``compiled_composite``), or from NumPy (``batched_logits``). Progress is reported between batches, which is where a superseded
job is cancelled (``interpret.progress.Cancelled``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from models.device import default_batch_size
from models.handle import ModelHandle

MakeBatch = Callable[[int, int], np.ndarray]
ProgressFn = Callable[[float, str], None]


def batch_candidates() -> list[int]:
    """Batch sizes worth trying on this device: the default (32 on a CPU, 256 on a GPU), a half and a quarter."""
    default = default_batch_size()
    return sorted({max(1, default // 4), max(1, default // 2), default})


def best_batch_size(m: ModelHandle) -> int:
    """The fastest batch size for this model on this device, measured once per handle.

    Each candidate runs on a zero input once to build the kernels for that shape, then
    twice timed; the faster time counts. On a small CPU a big batch is often *slower* per
    image (MobileNetV2 on 2 cores: batch 8 beats batch 32), so this is measured rather than
    assumed. Measured on its own input, not on a job's, so that a job's result never
    depends on when the measurement happened.
    """

    def measure() -> int:
        fn = compiled_logits(m)
        candidates = batch_candidates()
        probe = np.zeros((max(candidates), *m.input_shape), dtype=np.float32)
        rates = {}
        for size in candidates:
            batch = tf.constant(probe[:size])
            fn(batch).numpy()
            seconds = []
            for _ in range(2):  # the faster of two: robust to a neighbour's burst on a shared machine
                start = time.perf_counter()
                fn(batch).numpy()
                seconds.append(time.perf_counter() - start)
            rates[size] = size / max(min(seconds), 1e-9)
        return max(rates, key=rates.__getitem__)

    return m.cached("best_batch_size", measure)


def resolve_batch_size(m: ModelHandle, batch_size: int | None) -> int:
    """``0`` or ``None`` -> the measured best batch size for this model; otherwise the number given."""
    if batch_size is None or int(batch_size) <= 0:
        return best_batch_size(m)
    return int(batch_size)


def compiled_logits(m: ModelHandle) -> Callable[[tf.Tensor], tf.Tensor]:
    """The handle's logits as a ``tf.function`` traced once for any batch size, cached on the handle."""
    h, w, c = m.input_shape

    def build():
        model = m.logits_model

        @tf.function(input_signature=[tf.TensorSpec([None, h, w, c], tf.float32)])
        def logits(x):
            return model(x, training=False)

        return logits

    return m.cached("batched_logits", build)


def run_batched(
    m: ModelHandle,
    count: int,
    run_batch: Callable[[int, int], np.ndarray],
    batch_size: int | None = None,
    progress: ProgressFn | None = None,
    message: str = "forward passes",
    start: float = 0.0,
    stop: float = 1.0,
) -> np.ndarray:
    """Logits (count, K) from ``run_batch(i, j)`` -> logits of items i..j-1, called batch by batch.

    ``progress(fraction, message)`` is called before each batch with a fraction running
    from ``start`` to ``stop``; it may raise ``Cancelled`` to stop the job.
    """
    if count < 0:
        raise ValueError(f"count must be 0 or more; got {count}.")
    size = resolve_batch_size(m, batch_size)
    out = np.empty((count, m.num_classes), dtype=np.float32)
    for i in range(0, count, size):
        j = min(i + size, count)
        if progress is not None:
            progress(start + (stop - start) * i / max(count, 1), f"{message}: {i}/{count}")
        out[i:j] = run_batch(i, j)
    if progress is not None:
        progress(stop, f"{message}: done")
    return out


def batched_logits(
    m: ModelHandle,
    count: int,
    make_batch: MakeBatch,
    batch_size: int | None = None,
    progress: ProgressFn | None = None,
    message: str = "forward passes",
    start: float = 0.0,
    stop: float = 1.0,
) -> np.ndarray:
    """Logits (count, K) of ``count`` prepared inputs built in NumPy batch by batch.

    ``make_batch(i, j)`` returns the prepared inputs i..j-1 as float32 (j - i, H, W, C).
    """
    fn = compiled_logits(m)

    def run(i: int, j: int) -> np.ndarray:
        batch = np.asarray(make_batch(i, j), dtype=np.float32)
        if batch.shape != (j - i, *m.input_shape):
            raise ValueError(f"make_batch({i}, {j}) gave shape {batch.shape}; expected {(j - i, *m.input_shape)}.")
        return fn(tf.constant(batch)).numpy()

    return run_batched(m, count, run, batch_size, progress, message, start, stop)


def compiled_composite(
    m: ModelHandle, key: str, compose: Callable[..., tf.Tensor], signature: list[tf.TensorSpec]
) -> Callable[..., tf.Tensor]:
    """``tf.function(*args) -> logits(compose(*args))``, traced once per handle and ``key``.

    Building the perturbed copies inside the compiled function (from a few small
    arguments: patch corners, low-resolution maps, on/off rows) spares a copy of every
    batch through NumPy and into TensorFlow.
    """

    def build():
        model = m.logits_model

        @tf.function(input_signature=signature)
        def logits(*args):
            return model(compose(*args), training=False)

        return logits

    return m.cached(("composite", key), build)


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax in float64, returned as float32."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=axis, keepdims=True)).astype(np.float32)
