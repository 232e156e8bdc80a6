"""The engine shared by the faithfulness metrics: blends of a picture and a substrate, scored in batches.

Every metric here scores the picture passed in under many perturbations of the same kind::

    perturbed = keep * picture + (1 - keep) * substrate

with ``keep`` an (H, W) map in 0..1 over the picture's own pixels (all channels of a pixel
move together) and the substrate one of:

- ``"zero"``: black pixels (value 0 in the picture, before the model's own preprocessing);
- ``"mean"``: the picture's mean colour;
- ``"blur"``: the picture under a Gaussian blur of ``blur_sigma`` pixels (default: 5% of its
  longer side, so a 28-pixel picture and a 224-pixel photo are blurred alike).

A :class:`Plan` collects the rows (one ``keep`` map each, made only when its batch is built)
of one picture, for as many metrics and methods as the caller wants, and scores them all in
one stream of full batches at the handle's best batch size (``interpret.batching``): the
floor of N perturbations is N batched forward passes, and a metrics table for many methods
fills every batch. Where it is exact (see ``Plan.run``) the blending happens inside the
compiled model call, so a batch costs little more than its forward pass. Progress is
reported between batches, where a superseded job stops.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import tensorflow as tf

from interpret.batching import batched_logits, compiled_composite, run_batched
from interpret.progress import Progress
from models.handle import ModelHandle
from models.preprocessing import match_channels, resize_batch, resize_map, to_pixels

SUBSTRATES = ("zero", "mean", "blur")
SCORES = ("probability", "logit")
BLUR_FRACTION = 0.05  # default blur sigma, as a fraction of the picture's longer side

KeepFn = Callable[[], np.ndarray]


def part_of(progress: Progress, start: float, stop: float, prefix: str = "") -> Progress:
    """A progress for a part of a job: fractions 0..1 mapped into start..stop; the job's cancellation still applies."""

    def report(fraction: float, message: str = "") -> None:
        progress(start + (stop - start) * fraction, f"{prefix}{message}")

    return Progress(report)


def picture_pixels(image: np.ndarray) -> np.ndarray:
    """One picture (uint8, or float in 0..1; gray or colour) -> float32 (H, W, C) pixel values 0..255."""
    batch = to_pixels(image)
    if len(batch) != 1:
        raise ValueError(f"The metrics take one picture at a time; got a batch of {len(batch)}.")
    return batch[0]


def blur_sigma_for(shape: tuple[int, ...], blur_sigma: float | None = None) -> float:
    """The blur substrate's sigma in pixels: ``blur_sigma`` if given, else 5% of the longer side (at least 1)."""
    if blur_sigma is not None:
        if not float(blur_sigma) > 0:
            raise ValueError(f"blur_sigma must be a positive number of pixels; got {blur_sigma!r}.")
        return float(blur_sigma)
    return max(1.0, BLUR_FRACTION * max(int(shape[0]), int(shape[1])))


def substrate_of(pixels: np.ndarray, kind: str, blur_sigma: float | None = None) -> np.ndarray:
    """What removed pixels become: float32 like ``pixels`` (H, W, C)."""
    if kind == "zero":
        return np.zeros_like(pixels)
    if kind == "mean":
        return np.broadcast_to(pixels.mean(axis=(0, 1), keepdims=True), pixels.shape).astype(np.float32)
    if kind == "blur":
        sigma = blur_sigma_for(pixels.shape, blur_sigma)
        blurred = cv2.GaussianBlur(pixels, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
        return blurred.reshape(pixels.shape).astype(np.float32)
    raise ValueError(f"substrate={kind!r}: choose one of {', '.join(SUBSTRATES)}.")


def check_score(score: str) -> str:
    if score not in SCORES:
        raise ValueError(f"score={score!r}: choose one of {', '.join(SCORES)}.")
    return score


def map_for(heatmap: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A heatmap as float64 (H, W) over the picture: brought to its size if needed, non-finite values made 0."""
    heat = np.asarray(heatmap, dtype=np.float32)
    if heat.ndim == 3 and heat.shape[-1] == 1:
        heat = heat[..., 0]
    if heat.ndim != 2:
        raise ValueError(f"A heatmap must be 2-D (H, W); got shape {np.shape(heatmap)}.")
    heat = np.nan_to_num(heat, nan=0.0, posinf=0.0, neginf=0.0)
    return resize_map(heat, int(shape[0]), int(shape[1])).astype(np.float64)


def pixel_ranks(heatmap: np.ndarray) -> np.ndarray:
    """(H, W) int rank of every pixel, 0 for the highest value; ties keep reading order (row by row)."""
    flat = np.asarray(heatmap).ravel()
    order = np.argsort(-flat, kind="stable")
    ranks = np.empty(flat.size, dtype=np.int64)
    ranks[order] = np.arange(flat.size)
    return ranks.reshape(np.shape(heatmap))


def prepare_pixels(m: ModelHandle, pixels: np.ndarray) -> np.ndarray:
    """``m.prepare`` for pixel values already in 0..255 float32 (N, H, W, C): channels, size, the model's scaling."""
    h, w, c = m.input_shape
    return m.preprocessing(resize_batch(match_channels(pixels, c), h, w))


def scores_of(m: ModelHandle, logits: np.ndarray, target: int, score: str) -> np.ndarray:
    """The target's score per row: its probability (what the model reports) or its logit."""
    if check_score(score) == "logit":
        return np.asarray(logits, dtype=np.float64)[:, target]
    return np.asarray(m.probabilities(logits), dtype=np.float64)[:, target]


class Plan:
    """Perturbed copies of one picture, collected row by row and scored in one batched stream."""

    def __init__(self, pixels: np.ndarray, blur_sigma: float | None = None) -> None:
        self.pixels = np.asarray(pixels, dtype=np.float32)
        self.blur_sigma = blur_sigma
        self._substrates: dict[str, np.ndarray] = {}
        self.rows: list[tuple[str, KeepFn]] = []

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.pixels.shape[0]), int(self.pixels.shape[1])

    def substrate(self, kind: str) -> str:
        if kind not in self._substrates:
            self._substrates[kind] = substrate_of(self.pixels, kind, self.blur_sigma)
        return kind

    def add(self, substrate: str, keep: KeepFn) -> int:
        """One row: ``keep()`` -> (H, W) bool or float in 0..1, made when its batch is built. Returns its index."""
        self.rows.append((self.substrate(substrate), keep))
        return len(self.rows) - 1

    def blend(self, i: int, j: int) -> np.ndarray:
        """Rows i..j-1 as pixel values (j - i, H, W, C) in 0..255."""
        rows = self.rows[i:j]
        keeps = np.stack([np.asarray(keep(), dtype=np.float32) for _, keep in rows])[..., None]
        out = np.empty((len(rows), *self.pixels.shape), dtype=np.float32)
        for name in dict.fromkeys(n for n, _ in rows):
            chosen = [k for k, (n, _) in enumerate(rows) if n == name]
            sub = self._substrates[name]
            out[chosen] = sub + keeps[chosen] * (self.pixels - sub)
        return out

    def run(
        self,
        m: ModelHandle,
        batch_size: int | None = None,
        progress: Callable[[float, str], None] | None = None,
        start: float = 0.0,
        stop: float = 1.0,
        message: str = "scoring perturbed copies",
    ) -> np.ndarray:
        """Logits (rows, K): every row through the model, in batches at the handle's best batch size.

        When the picture is at the model's input size and the model's preprocessing acts on each
        pixel alone and linearly (``blends_commute``: the presets and the zoo's
        ``preprocess_input`` do), blending commutes with preparing: the picture and the substrates
        are prepared once and each batch is blended inside the compiled model call from its keep
        maps alone. Otherwise each batch is blended in pixels and prepared as ``m.prepare`` would.
        """
        h, w, c = m.input_shape
        if self.shape == (h, w) and blends_commute(m):
            return self._run_compiled(m, batch_size, progress, start, stop, message)

        def make_batch(i: int, j: int) -> np.ndarray:
            return prepare_pixels(m, self.blend(i, j))

        return batched_logits(m, len(self.rows), make_batch, batch_size, progress, message, start, stop)

    def _run_compiled(self, m, batch_size, progress, start, stop, message) -> np.ndarray:
        h, w, c = m.input_shape
        names = list(self._substrates)
        prepared = prepare_pixels(m, np.stack([self.pixels, *(self._substrates[n] for n in names)]))
        picture, substrates = tf.constant(prepared[0]), tf.constant(prepared[1:])
        which = np.array([names.index(n) for n, _ in self.rows], dtype=np.int32)
        signature = [
            tf.TensorSpec([h, w, c], tf.float32),
            tf.TensorSpec([None, h, w, c], tf.float32),
            tf.TensorSpec([None, h, w], tf.float32),
            tf.TensorSpec([None], tf.int32),
        ]
        fn = compiled_composite(m, "metrics: blend", _blend, signature)

        def run_batch(i: int, j: int) -> np.ndarray:
            keeps = np.stack([np.asarray(keep(), dtype=np.float32) for _, keep in self.rows[i:j]])
            return fn(picture, substrates, tf.constant(keeps), tf.constant(which[i:j])).numpy()

        return run_batched(m, len(self.rows), run_batch, batch_size, progress, message, start, stop)


def _blend(picture: tf.Tensor, substrates: tf.Tensor, keeps: tf.Tensor, which: tf.Tensor) -> tf.Tensor:
    sub = tf.gather(substrates, which)
    return sub + keeps[..., None] * (picture[None] - sub)


def blends_commute(m: ModelHandle) -> bool:
    """Whether preparing a blend equals blending the prepared pictures for this handle (checked once, numerically).

    True when the preprocessing is per pixel and affine (scaling, offsets, channel means, a channel
    flip); false for anything else, e.g. a standardisation by the picture's own mean.
    """

    def check() -> bool:
        h, w, c = m.input_shape
        rng = np.random.default_rng(0)
        a = rng.uniform(0.0, 255.0, (2, h, w, c)).astype(np.float32)
        t = rng.random((1, h, w, 1)).astype(np.float32)
        mixed = prepare_pixels(m, t * a[:1] + (1 - t) * a[1:])
        each = prepare_pixels(m, a)
        scale = max(1.0, float(np.abs(each).max()))
        return bool(np.allclose(mixed, t * each[:1] + (1 - t) * each[1:], rtol=1e-5, atol=1e-5 * scale))

    return m.cached(("metrics", "blends commute"), check)
