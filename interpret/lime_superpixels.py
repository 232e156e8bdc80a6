"""LIME on superpixels: which regions, switched off at random, move the class score.

Ribeiro, Singh & Guestrin (2016), "'Why Should I Trust You?': Explaining the Predictions
of Any Classifier", KDD, arXiv:1602.04938.

The picture is cut into superpixels (scikit-image's quickshift, SLIC or Felzenszwalb);
``num_samples`` copies switch random subsets of them off (replaced by each superpixel's
mean colour, or by zero input); the model scores every copy; a weighted ridge regression
of the score on the on/off pattern gives one weight per superpixel. The ``lime``
package does the sampling and the regression (``lime.lime_image.LimeImageExplainer``);
here the copies are built by indexing inside the model's compiled function (instead of
lime's per-superpixel loop in Python) and scored in batches, with lime's own random
draws, so a seed gives the same result as lime itself. The module is not called ``lime`` so that it
does not shadow the package.

Segmentation runs on the picture as a person sees it (the model's preprocessing undone
where it is affine per pixel), upscaled to at least 224 px on its shorter side (the size
lime's defaults are tuned for), so the algorithms' parameters keep their meaning at any
input size.
Grayscale models are handled by giving lime an RGB copy and the model its first channel.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import tensorflow as tf
from lime import lime_image
from skimage.segmentation import felzenszwalb, quickshift, slic

from interpret.batching import batched_logits, compiled_composite, resolve_batch_size, run_batched
from interpret.explanation import MethodResult
from interpret.registry import Method, Param, register
from interpret.render import boundaries
from models.handle import ModelHandle

MAX_SAMPLES = 5000
SEGMENT_SIDE = 224
SEGMENTERS = ("quickshift", "slic", "felzenszwalb")
HIDES = ("segment mean", "zero")
SCORES = ("probability", "logit")


def segment(
    image: np.ndarray,
    algorithm: str = "quickshift",
    *,
    kernel_size: float = 4.0,
    max_dist: float = 200.0,
    ratio: float = 0.2,
    n_segments: int = 50,
    compactness: float = 10.0,
    scale: float = 100.0,
    sigma: float = 0.8,
    min_size: int = 20,
    seed: int = 0,
) -> np.ndarray:
    """Superpixels of an RGB float image in 0..1: int (H, W) labels 0..n-1."""
    rgb = np.asarray(image, dtype=np.float64)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"Superpixels need an RGB image (H, W, 3); got shape {rgb.shape}.")
    if algorithm == "quickshift":
        labels = quickshift(rgb, kernel_size=kernel_size, max_dist=max_dist, ratio=ratio, rng=seed)
    elif algorithm == "slic":
        labels = slic(rgb, n_segments=int(n_segments), compactness=compactness, sigma=sigma, start_label=0)
    elif algorithm == "felzenszwalb":
        labels = felzenszwalb(rgb, scale=scale, sigma=sigma, min_size=int(min_size))
    else:
        raise ValueError(f"segmenter={algorithm!r}: choose one of {', '.join(SEGMENTERS)}.")
    # lime indexes superpixels 0..n-1; relabel so that every label in that range exists
    _, dense = np.unique(labels, return_inverse=True)
    return dense.reshape(labels.shape).astype(np.int64)


def segment_at_working_size(image: np.ndarray, algorithm: str = "quickshift", **params) -> np.ndarray:
    """``segment`` on a picture upscaled to at least ``SEGMENT_SIDE`` px, labels brought back to its size.

    The algorithms' parameters (lime's quickshift defaults in particular) are tuned for
    pictures of a few hundred pixels; a 28x28 input would otherwise come out as one superpixel.
    """
    h, w = image.shape[:2]
    factor = SEGMENT_SIDE / min(h, w)
    if factor <= 1.0:
        return segment(image, algorithm, **params)
    big = cv2.resize(image, (round(w * factor), round(h * factor)), interpolation=cv2.INTER_LINEAR)
    labels = segment(big, algorithm, **params)
    small = cv2.resize(labels.astype(np.int32), (w, h), interpolation=cv2.INTER_NEAREST)
    _, dense = np.unique(small, return_inverse=True)
    return dense.reshape(small.shape).astype(np.int64)


def visible_pixels(m: ModelHandle, x: np.ndarray) -> np.ndarray:
    """Undo the model's preprocessing of one prepared (H, W, C) input -> RGB float 0..1.

    Exact for preprocessing that is affine per pixel (scaling, mean subtraction, channel
    order); otherwise the input is min-max stretched to 0..1.
    """
    c = x.shape[-1]
    probe = np.zeros((1, 1, c + 1, c), dtype=np.float32)
    for i in range(c):
        probe[0, 0, i + 1, i] = 255.0
    out = m.preprocessing(probe)[0, 0]
    offset, matrix = out[0], (out[1:] - out[0]) / 255.0
    pixels = None
    if np.all(np.isfinite(matrix)) and abs(np.linalg.det(matrix)) > 1e-12:
        check = np.random.default_rng(0).uniform(0, 255, (1, 1, 4, c)).astype(np.float32)
        if np.allclose(m.preprocessing(check)[0, 0], check[0, 0] @ matrix + offset, rtol=1e-4, atol=1e-3):
            pixels = ((x - offset) @ np.linalg.inv(matrix)) / 255.0
    if pixels is None:
        lo, hi = float(x.min()), float(x.max())
        pixels = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    pixels = np.clip(pixels, 0.0, 1.0)
    return np.repeat(pixels, 3, axis=-1) if c == 1 else pixels


def composites(image: np.ndarray, hidden: np.ndarray, segments: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Copies of ``image`` with the superpixels whose entry in ``rows`` (b, n) is 0 taken from ``hidden``."""
    keep = rows.astype(bool)[:, segments]  # (b, H, W)
    return np.where(keep[..., None], image, hidden)


def switched_copies(image: tf.Tensor, hidden: tf.Tensor, segments: tf.Tensor, rows: tf.Tensor) -> tf.Tensor:
    """``composites`` inside a compiled function: rows (b, n) of 0/1 -> (b, H, W, C) copies."""
    keep = tf.gather(rows, segments, axis=1) > 0.5  # (b, H, W)
    return tf.where(keep[..., None], image[None], hidden[None])


ScoreRows = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int], np.ndarray]


class BatchedLimeImageExplainer(lime_image.LimeImageExplainer):
    """lime's explainer with the perturbed copies built by indexing and progress between batches.

    The random on/off patterns are drawn exactly as ``LimeImageExplainer.data_labels`` draws
    them, so results match lime's for the same seed. With ``score_rows(image, hidden,
    segments, rows, batch_size) -> scores`` the copies are built inside the model's compiled
    function; without it they are built here and handed to lime's ``classifier_fn``.
    """

    def __init__(
        self, *args, progress: Callable[[float, str], None] | None = None, score_rows: ScoreRows | None = None, **kwargs
    ) -> None:
        super().__init__(*args, **kwargs)
        self.progress = progress
        self.score_rows = score_rows

    def data_labels(self, image, fudged_image, segments, classifier_fn, num_samples, batch_size=10, progress_bar=False):
        n_features = np.unique(segments).shape[0]
        data = self.random_state.randint(0, 2, num_samples * n_features).reshape((num_samples, n_features))
        data[0, :] = 1
        if self.score_rows is not None:
            return data, self.score_rows(image, fudged_image, segments, data, batch_size)
        labels = []
        for i in range(0, num_samples, batch_size):
            if self.progress is not None:
                self.progress(0.1 + 0.85 * i / num_samples, f"LIME samples: {i}/{num_samples}")
            labels.append(
                np.asarray(classifier_fn(composites(image, fudged_image, segments, data[i : i + batch_size])))
            )
        return data, np.concatenate(labels)


def row_scorer(m: ModelHandle, score: str = "probability", progress=None) -> ScoreRows:
    """Scores of on/off rows: the copies are built and scored in the model's compiled function, in batches."""
    h, w, c = m.input_shape
    gray = c == 1

    def compose(image, hidden, segments, rows):
        copies = switched_copies(image, hidden, segments, rows)
        return copies[..., :1] if gray else copies

    fn = compiled_composite(
        m,
        "lime",
        compose,
        [
            tf.TensorSpec([h, w, 3], tf.float32),
            tf.TensorSpec([h, w, 3], tf.float32),
            tf.TensorSpec([h, w], tf.int32),
            tf.TensorSpec([None, None], tf.float32),
        ],
    )

    def score_rows(image, hidden, segments, rows, batch_size):
        args = (tf.constant(image, tf.float32), tf.constant(hidden, tf.float32), tf.constant(segments, tf.int32))
        on_off = np.asarray(rows, dtype=np.float32)

        def run_batch(i: int, j: int) -> np.ndarray:
            return fn(*args, tf.constant(on_off[i:j])).numpy()

        logits = run_batched(m, len(on_off), run_batch, batch_size, progress, "LIME samples", 0.1, 0.95)
        return m.probabilities(logits) if score == "probability" else logits

    return score_rows


def classifier(m: ModelHandle, score: str = "probability", batch_size: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """lime's ``classifier_fn``: prepared RGB copies (N, H, W, 3) -> (N, K) scores, in compiled batches."""
    gray = m.input_shape[-1] == 1

    def classify(images: np.ndarray) -> np.ndarray:
        batch = np.asarray(images, dtype=np.float32)
        if gray:
            batch = batch[..., :1]
        logits = batched_logits(m, len(batch), lambda i, j: batch[i:j], batch_size)
        return m.probabilities(logits) if score == "probability" else logits

    return classify


def shown_superpixels(weights: np.ndarray, count: int, positive_only: bool) -> np.ndarray:
    """Indices of the superpixels to show: the ``count`` largest weights (positive ones only) or largest |weights|."""
    order = np.argsort(-weights, kind="stable") if positive_only else np.argsort(-np.abs(weights), kind="stable")
    if positive_only:
        order = order[weights[order] > 0]
    return order[:count]


def superpixel_map(segments: np.ndarray, weights: np.ndarray, shown: np.ndarray) -> np.ndarray:
    """Paint each shown superpixel with its (signed) weight; the rest is 0."""
    painted = np.zeros_like(weights, dtype=np.float32)
    painted[shown] = weights[shown]
    return painted[segments]


def lime(
    m: ModelHandle,
    x: np.ndarray,
    target: int,
    num_samples: int = 1000,
    segmenter: str = "quickshift",
    kernel_size: float = 4.0,
    max_dist: float = 200.0,
    ratio: float = 0.2,
    n_segments: int = 50,
    compactness: float = 10.0,
    scale: float = 100.0,
    sigma: float = 0.8,
    min_size: int = 20,
    positive_only: bool = True,
    num_superpixels: int = 5,
    hide: str = "segment mean",
    score: str = "probability",
    seed: int = 0,
    batch_size: int = 0,
    progress=None,
    **_,
) -> MethodResult:
    if hide not in HIDES:
        raise ValueError(f"hide={hide!r}: choose one of {', '.join(HIDES)}.")
    if score not in SCORES:
        raise ValueError(f"score={score!r}: choose one of {', '.join(SCORES)}.")
    if progress is not None:
        progress(0.0, f"LIME: {segmenter} superpixels")
    prepared = np.asarray(x[0], dtype=np.float32)
    segments = segment_at_working_size(
        visible_pixels(m, prepared),
        segmenter,
        kernel_size=kernel_size,
        max_dist=max_dist,
        ratio=ratio,
        n_segments=n_segments,
        compactness=compactness,
        scale=scale,
        sigma=sigma,
        min_size=min_size,
        seed=seed,
    )
    rgb = np.repeat(prepared, 3, axis=-1) if prepared.shape[-1] == 1 else prepared
    size = resolve_batch_size(m, batch_size)
    explainer = BatchedLimeImageExplainer(
        random_state=seed, progress=progress, score_rows=row_scorer(m, score, progress)
    )
    result = explainer.explain_instance(
        rgb,
        classifier(m, score, size),
        labels=(target,),
        hide_color=None if hide == "segment mean" else 0.0,
        top_labels=None,
        num_features=int(segments.max()) + 1,
        num_samples=int(num_samples),
        batch_size=size,
        segmentation_fn=lambda _image: segments,
        random_seed=seed,
    )
    weights = np.zeros(int(segments.max()) + 1, dtype=np.float32)
    for index, weight in result.local_exp[target]:
        weights[index] = weight
    shown = shown_superpixels(weights, int(num_superpixels), bool(positive_only))
    extras = {
        "segments": segments,
        "weights": weights,
        "shown": shown,
        "intercept": float(result.intercept[target]),
        "fit_score": float(result.score),
    }
    return MethodResult(superpixel_map(segments, weights, shown), extras)


def lime_passes(params: dict, input_shape: tuple[int, int, int]) -> int:
    """One forward pass per perturbed copy (the first is the picture itself, all superpixels on)."""
    return int(params["num_samples"])


def draw_segments(picture: np.ndarray, extras: dict) -> np.ndarray:
    """LIME's superpixel outlines over its overlay."""
    return boundaries(picture, extras["segments"]) if "segments" in extras else picture


register(
    Method(
        name="lime",
        title="LIME",
        fn=lime,
        paper="Ribeiro et al. 2016",
        kind="perturbation",
        signed=True,
        passes=lime_passes,
        draw_extras=draw_segments,
        # Defaults: those of ``lime``'s keyword arguments, declared there once.
        params=(
            Param("num_samples", "int", help="Perturbed copies scored by the model.", min=10, max=MAX_SAMPLES, step=10),
            Param("segmenter", "choice", help="Superpixel algorithm (scikit-image).", choices=SEGMENTERS),
            Param(
                "kernel_size", "float", help="quickshift: width of the smoothing kernel.", min=0.5, max=50.0, step=0.5
            ),
            Param(
                "max_dist",
                "float",
                help="quickshift: cut-off distance; larger means fewer superpixels.",
                min=1.0,
                max=1000.0,
                step=1.0,
            ),
            Param("ratio", "float", help="quickshift: colour vs position (0..1).", min=0.0, max=1.0, step=0.05),
            Param("n_segments", "int", help="slic: about how many superpixels.", min=2, max=1000, step=1),
            Param(
                "compactness", "float", help="slic: higher means squarer superpixels.", min=0.01, max=1000.0, step=1.0
            ),
            Param(
                "scale", "float", help="felzenszwalb: higher means larger superpixels.", min=1.0, max=10000.0, step=10.0
            ),
            Param(
                "sigma",
                "float",
                help="slic and felzenszwalb: Gaussian smoothing before segmenting.",
                min=0.0,
                max=10.0,
                step=0.1,
            ),
            Param("min_size", "int", help="felzenszwalb: smallest superpixel in pixels.", min=1, max=10000, step=1),
            Param("positive_only", "bool", help="Show only superpixels that support the class (else both signs)."),
            Param("num_superpixels", "int", help="How many superpixels to show, by weight.", min=1, max=1000, step=1),
            Param("hide", "choice", help="What a switched-off superpixel shows.", choices=HIDES),
            Param("score", "choice", help="What the local linear model explains.", choices=SCORES),
            Param(
                "seed",
                "int",
                help="Random seed: the same seed gives the same explanation.",
                min=0,
                max=2**31 - 1,
                step=1,
            ),
            Param(
                "batch_size",
                "int",
                help="Copies per forward pass (lime's batch_size); 0 = the fastest for this model, measured once.",
                min=0,
                max=1024,
                step=1,
            ),
        ),
        summary="A local linear model over superpixels switched on and off at random.",
    )
)
