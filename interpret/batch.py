"""Explanations of many pictures at once: the shared work of ``cnn-lens batch`` and the Dataset page.

``predict_pixels`` and ``explain_batch`` take pictures already at the model's input size
(uint8 ``(N, H, W, C)``, as ``models.datasets.Dataset.batches`` gives them), so a batch
goes through the model in one call:

- Grad-CAM and saliency run **batched**: one compiled forward+backward pass for the whole
  batch, each row with its own target (the top-1 class is picked inside the same pass, so
  it costs no extra forward pass). The maps equal ``explain``'s for each picture.
- Every other method runs ``explain`` picture by picture with an explicit target (no extra
  pass); perturbation methods (occlusion, Score-CAM, LIME) batch their own copies inside.

``batch_rows`` is one batch of the batch command: predictions, one heatmap per picture and
method, and the metric values (deletion and insertion, from ``interpret.metrics``), as plain
columns. Both engines of the command (local and Ray) call it, so they write the same rows.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf

from interpret import metrics
from interpret.core import explain, resolve_layer
from interpret.progress import Progress
from interpret.registry import METHODS
from models.handle import ModelHandle
from models.preprocessing import resize_map

TOP1 = -1  # a target meaning "the model's top-1 class for this picture"
METRIC_COLUMNS = {"deletion": "deletion_auc", "insertion": "insertion_auc"}


@dataclass
class BatchExplanation:
    """One method over a batch: maps over the model's input, the class each explains, its logit."""

    method: str
    heatmaps: np.ndarray  # float32 (N, H, W), H x W the model's input size
    targets: np.ndarray  # int64 (N,)
    scores: np.ndarray  # float32 (N,): the target's logit
    logits: np.ndarray | None = None  # float32 (N, K) when the pass computed them
    layer: str | None = None


def _batched_gradcam(m: ModelHandle, x: np.ndarray, targets: np.ndarray, layer: str) -> tuple[np.ndarray, ...]:
    h, w, c = m.input_shape

    def build():
        @tf.function(input_signature=[tf.TensorSpec([None, h, w, c]), tf.TensorSpec([None], tf.int64)])
        def run(x, wanted):
            with tf.GradientTape() as tape:
                tape.watch(x)
                logits, tapped = m.run(x, taps=(layer,))
                acts = tapped[layer]
                chosen = tf.where(wanted < 0, tf.argmax(logits, axis=-1), wanted)
                score = tf.gather(logits, chosen, axis=1, batch_dims=1)
            grads = tape.gradient(score, acts)
            weights = tf.reduce_mean(grads, axis=(1, 2))  # Selvaraju et al. Eq. 1
            cam = tf.nn.relu(tf.einsum("nhwk,nk->nhw", acts, weights))  # Eq. 2
            cam = tf.where(tf.math.is_finite(cam), cam, tf.zeros_like(cam))  # as _resized's nan_to_num
            size = tuple(cam.shape[1:3])
            if None not in size and size != (h, w):
                # resize_map's bilinear resize to the input size, in the same call (the host then only copies
                # the maps out): (h, lh) @ (lh, lw) @ (lw, w) per map
                rows, cols = (tf.constant(a) for a in _resize_matrices(*size, h, w))
                cam = tf.matmul(rows, tf.matmul(cam, cols))
            return cam, chosen, score, logits

        return run

    fn = m.cached(("batch_gradcam", layer), build)
    return tuple(t.numpy() for t in fn(tf.constant(x, tf.float32), tf.constant(targets, tf.int64)))


def _batched_saliency(m: ModelHandle, x: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, ...]:
    h, w, c = m.input_shape

    def build():
        @tf.function(input_signature=[tf.TensorSpec([None, h, w, c]), tf.TensorSpec([None], tf.int64)])
        def run(x, wanted):
            with tf.GradientTape() as tape:
                tape.watch(x)
                logits, _ = m.run(x)
                chosen = tf.where(wanted < 0, tf.argmax(logits, axis=-1), wanted)
                score = tf.gather(logits, chosen, axis=1, batch_dims=1)
            grads = tape.gradient(score, x)
            return tf.reduce_max(tf.abs(grads), axis=-1), chosen, score, logits  # Simonyan et al. Sec. 3.1

        return run

    fn = m.cached(("batch_saliency",), build)
    return tuple(t.numpy() for t in fn(tf.constant(x, tf.float32), tf.constant(targets, tf.int64)))


def batched_methods() -> tuple[str, ...]:
    """Methods with a one-pass batched path here (the others run picture by picture)."""
    return ("gradcam", "saliency")


@functools.lru_cache(maxsize=32)
def _resize_matrices(h: int, w: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """``resize_map``'s bilinear resize of (h, w) maps as two matrices, (height, h) and (w, width), the resized
    unit maps: the resize is linear and separable, so ``rows @ map @ cols`` equals ``resize_map(map)`` up to
    float32 rounding (about 1e-7 of the map's largest value)."""
    rows = resize_map(np.eye(h, dtype=np.float32), height, h)  # column j: unit row j resized down the rows
    cols = resize_map(np.eye(w, dtype=np.float32), w, width)  # row j: unit column j resized along a row
    return np.ascontiguousarray(rows), np.ascontiguousarray(cols)


def _resized(maps: np.ndarray, height: int, width: int) -> np.ndarray:
    maps = np.asarray(maps, dtype=np.float32)
    if not np.isfinite(maps).all():  # a check, not a copy, for the maps that are finite (all of Grad-CAM's)
        maps = np.nan_to_num(maps, nan=0.0, posinf=0.0, neginf=0.0)
    if maps.shape[1:] == (height, width):
        return maps
    return np.stack([resize_map(a, height, width) for a in maps]) if len(maps) else np.zeros((0, height, width))


def explain_batch(
    m: ModelHandle,
    pixels: np.ndarray,
    method: str = "gradcam",
    targets: Sequence[int] | np.ndarray | None = None,
    layer: str | None = None,
    params: dict[str, Any] | None = None,
    progress: Callable[[float, str], None] | Progress | None = None,
    prepared: np.ndarray | None = None,
) -> BatchExplanation:
    """``method`` on every picture of ``pixels`` (uint8 or 0..1 float (N, H, W, C) at the model's input size).

    ``targets``: one class per picture; ``None`` or -1 (``TOP1``) for the model's top-1 class.
    ``prepared``: ``m.prepare(pixels)`` when the caller already has it (the batch command prepares
    the next batch while the model runs on this one).
    """
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; choose one of {', '.join(METHODS)}.")
    spec = METHODS[method]
    params = spec.check_params(dict(params or {}))
    pixels = np.asarray(pixels)
    n = len(pixels)
    h, w, _ = m.input_shape
    if pixels.ndim != 4 or pixels.shape[1:] != m.input_shape:
        raise ValueError(f"explain_batch takes pictures at the model's input size {m.input_shape}; got {pixels.shape}.")
    wanted = np.full(n, TOP1, dtype=np.int64) if targets is None else np.asarray(targets, dtype=np.int64).reshape(n)
    if np.any(wanted >= m.num_classes) or np.any(wanted < TOP1):
        raise ValueError(f"targets must be class indices 0..{m.num_classes - 1} (or -1 for the top-1 class).")
    chosen_layer = resolve_layer(m, layer) if spec.uses_layer else None
    progress = progress if isinstance(progress, Progress) else Progress(progress)
    if n == 0:
        empty = np.zeros((0,), np.int64)
        return BatchExplanation(
            method, np.zeros((0, h, w), np.float32), empty, empty.astype(np.float32), None, chosen_layer
        )
    x = m.prepare(pixels) if prepared is None else prepared
    if method in batched_methods() and not params:
        progress(0.0, f"{spec.title}: {n} pictures")
        if method == "gradcam":
            maps, chosen, scores, logits = _batched_gradcam(m, x, wanted, chosen_layer)
        else:
            maps, chosen, scores, logits = _batched_saliency(m, x, wanted)
        progress(1.0, f"{spec.title}: done")
        return BatchExplanation(
            method, _resized(maps, h, w), chosen.astype(np.int64), scores.astype(np.float32), logits, chosen_layer
        )
    logits = None
    if np.any(wanted == TOP1):
        logits = m.logits(x, prepared=True)
        wanted = np.where(wanted == TOP1, np.argmax(logits, axis=-1), wanted)
    maps, scores = np.zeros((n, h, w), np.float32), np.zeros(n, np.float32)
    for i in range(n):
        sub = Progress(lambda f, msg, i=i: progress((i + f) / n, f"picture {i + 1}/{n}: {msg}"), None)
        progress(i / n, f"{spec.title}: picture {i + 1}/{n}")
        e = explain(m, pixels[i], method=method, target=int(wanted[i]), layer=chosen_layer, progress=sub, **params)
        maps[i], scores[i] = e.heatmap, e.score
    progress(1.0, f"{spec.title}: done")
    return BatchExplanation(method, maps, wanted.astype(np.int64), scores, logits, chosen_layer)


def predict_pixels(m: ModelHandle, pixels: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """(N, K) probabilities of pictures at the model's input size (uint8 or 0..1 float)."""
    pixels = np.asarray(pixels)
    if len(pixels) == 0:
        return np.zeros((0, m.num_classes), np.float32)
    return m.probabilities(m.logits(m.prepare(pixels), batch_size=batch_size, prepared=True))


def explain_pictures(
    m: ModelHandle,
    pixels: np.ndarray,
    method: str = "gradcam",
    targets: Sequence[int] | np.ndarray | None = None,
    layer: str | None = None,
    progress: Callable[[float, str], None] | Progress | None = None,
) -> np.ndarray:
    """Only the heatmaps (N, H, W) of ``explain_batch``: what a page's gallery needs (plain data for the wire)."""
    return explain_batch(m, pixels, method, targets, layer, None, progress).heatmaps


# ---- one batch of the batch command --------------------------------------------------------------
@dataclass
class BatchSettings:
    """What the batch command computes for every picture."""

    methods: list[str]
    metrics: list[str] = field(default_factory=list)  # "deletion", "insertion"
    target: str = "predicted"  # "predicted" (top-1) | "label"
    layer: str | None = None
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # method -> its parameters
    steps: int = 20  # deletion / insertion steps

    def check(self) -> BatchSettings:
        unknown = [n for n in self.methods if n not in METHODS]
        if unknown or not self.methods:
            raise ValueError(f"Unknown method {', '.join(unknown) or '(none)'}; choose from {', '.join(METHODS)}.")
        bad = [k for k in self.metrics if k not in METRIC_COLUMNS]
        if bad:
            raise ValueError(f"Unknown metric {', '.join(bad)}; choose from {', '.join(METRIC_COLUMNS)}.")
        if self.target not in ("predicted", "label"):
            raise ValueError(f"target={self.target!r}: choose predicted or label.")
        for name, p in self.params.items():
            if name not in self.methods:
                raise ValueError(f"Parameters given for {name}, which is not among the methods.")
            METHODS[name].check_params(dict(p))
        return self


ROW_COLUMNS = (
    "index",
    "id",
    "label",
    "label_name",
    "predicted",
    "predicted_name",
    "probability",
    "correct",
    "method",
    "target",
    "target_name",
    "target_probability",
    "score",
    "heatmap",
)


def batch_rows(
    m: ModelHandle,
    pixels: np.ndarray,
    labels: np.ndarray,
    ids: Sequence[str],
    indices: np.ndarray,
    settings: BatchSettings,
    label_names: Sequence[str] | None = None,
    prepared: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Columns (NumPy arrays) of one row per picture x method: id, label, prediction, target, metrics, heatmap.

    ``pixels``: uint8 (N, H, W, C) at the model's input size; ``labels``: the model's class index of
    each picture's true class (-1 when unknown or not one of the model's classes); ``label_names``:
    the dataset's own name of each picture's class (default: the model's name of ``labels``);
    ``prepared``: ``m.prepare(pixels)``, when the caller has it already.
    Rows come method by method, pictures in the order given. ``correct`` is 1, 0, or -1 (no label);
    ``heatmap`` is float32 (rows, H * W) over the model's input.
    """
    n = len(pixels)
    h, w, _ = m.input_shape
    names = np.asarray(m.class_names, dtype=object)
    labels = np.asarray(labels, dtype=np.int64).reshape(n)
    first: BatchExplanation | None = None
    first_method = settings.methods[0]
    if settings.target == "predicted" and first_method in batched_methods() and not settings.params.get(first_method):
        # the first method's own pass picks the top-1 class and gives the logits: no separate forward pass
        first = explain_batch(m, pixels, first_method, None, settings.layer, prepared=prepared)
        probs = m.probabilities(first.logits) if n else np.zeros((0, m.num_classes), np.float32)
    else:
        probs = predict_pixels(m, pixels)
    predicted = np.argmax(probs, axis=-1).astype(np.int64) if n else np.zeros(0, np.int64)
    if settings.target == "label":
        if np.any(labels < 0) or np.any(labels >= m.num_classes):
            raise ValueError("--target label needs every picture's label to be one of the model's classes.")
        wanted = labels
    else:
        wanted = predicted
    if label_names is None:
        label_names = [names[v] if 0 <= v < len(names) else "" for v in labels]
    rows = np.arange(n)
    picture = {
        "index": np.asarray(indices, dtype=np.int64).reshape(n),
        "id": np.asarray([str(v) for v in ids], dtype=object).reshape(n),
        "label": labels,
        "label_name": np.asarray([str(v) for v in label_names], dtype=object).reshape(n),
        "predicted": predicted,
        "predicted_name": names[predicted] if n else np.zeros(0, object),
        "probability": probs[rows, predicted].astype(np.float32) if n else np.zeros(0, np.float32),
        "correct": np.where(labels >= 0, (labels == predicted).astype(np.int8), -1).astype(np.int8),
    }
    curves = {"deletion": metrics.deletion, "insertion": metrics.insertion}
    parts: list[dict[str, np.ndarray]] = []
    for method in settings.methods:
        if method == first_method and first is not None:
            e = first
        else:
            e = explain_batch(m, pixels, method, wanted, settings.layer, settings.params.get(method), prepared=prepared)
        part = dict(picture)
        part["method"] = np.full(n, method, dtype=object)
        part["target"] = e.targets
        part["target_name"] = names[e.targets] if n else np.zeros(0, object)
        part["target_probability"] = probs[rows, e.targets].astype(np.float32) if n else np.zeros(0, np.float32)
        part["score"] = e.scores.astype(np.float32)
        part["heatmap"] = np.asarray(e.heatmaps, dtype=np.float32).reshape(n, h * w)
        for metric in settings.metrics:
            fn = curves[metric]
            aucs = [fn(m, pixels[i], e.heatmaps[i], target=int(e.targets[i]), steps=settings.steps).auc for i in rows]
            part[METRIC_COLUMNS[metric]] = np.asarray(aucs, dtype=np.float64)
        parts.append(part)
    if len(parts) == 1:
        return parts[0]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
