"""Score-CAM: conv feature maps weighted by how much each one, used as a mask, keeps the class score.

Wang, Wang, Du, Yang, Zhang, Ding, Mardziel & Hu (2020), "Score-CAM: Score-Weighted
Visual Explanations for Convolutional Neural Networks", CVPR workshops, arXiv:1910.01279.

Algorithm 1 of the paper: each channel A_k of the chosen layer is upsampled to the input
size and min-max normalised to 0..1 (H_k); the input is multiplied by each H_k (the
masked copies are built and scored in batches inside one compiled function); the
weights are a softmax over the channels of the target logits, ``alpha_k = softmax_k(f_c(x * H_k) - f_c(x_b))`` (the baseline term is
the same for every channel, so it cancels); the map is ``ReLU(sum_k alpha_k A_k)``.

``weighting="probability"`` uses the authors' released code instead, which weights each
channel by the softmax-over-classes probability of the target, ``p_c(x * H_k)``; this is
also what tf-keras-vis's ``Scorecam`` computes.

``max_channels`` caps the number of masked copies (Faster Score-CAM, as in tf-keras-vis's
``max_N``): when the layer has more channels, the ones whose activation map has the
largest spatial standard deviation are kept.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from interpret.batching import compiled_composite, run_batched, softmax
from interpret.explanation import MethodResult
from interpret.registry import Method, Param, register
from models.handle import ModelHandle

EPSILON = 1e-7  # keras.backend.epsilon(), as in tf-keras-vis's normalisation
WEIGHTINGS = ("softmax over channels", "probability")


def select_channels(activations: np.ndarray, max_channels: int) -> np.ndarray:
    """Indices of the channels of (h, w, K) activations to use: all, or the ``max_channels`` with the largest spatial std."""
    k = activations.shape[-1]
    if max_channels < 1:
        raise ValueError(f"max_channels must be at least 1; got {max_channels}.")
    if k <= max_channels:
        return np.arange(k)
    spread = activations.reshape(-1, k).std(axis=0)
    return np.argsort(-spread, kind="stable")[:max_channels]


def normalised_upsample(maps: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    """(k, h, w) maps -> (k, H, W, 1) masks: bilinear upsampling, then min-max normalised per map."""
    up = tf.image.resize(maps[..., None], size, method="bilinear")
    lo = tf.reduce_min(up, axis=(1, 2, 3), keepdims=True)
    hi = tf.reduce_max(up, axis=(1, 2, 3), keepdims=True)
    return (up - lo) / (hi - lo + EPSILON)


def masked_copies(image: tf.Tensor, maps: tf.Tensor) -> tf.Tensor:
    """(k, H, W, C) copies of the (H, W, C) ``image``, each multiplied by one normalised upsampled map."""
    return image[None] * normalised_upsample(maps, tf.shape(image)[:2])


def upsampled_masks(activations: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w, k) activations -> (k, H, W) masks in 0..1, as used on the input."""
    maps = tf.transpose(tf.constant(activations, tf.float32), (2, 0, 1))
    return normalised_upsample(maps, tf.constant(size, tf.int32)).numpy()[..., 0]


def scorecam_weights(masked_logits: np.ndarray, target: int, weighting: str = "softmax over channels") -> np.ndarray:
    """(k, K) logits of the k masked copies -> (k,) channel weights."""
    if weighting == "softmax over channels":
        return softmax(masked_logits[:, target], axis=0)
    if weighting == "probability":
        return softmax(masked_logits, axis=-1)[:, target]
    raise ValueError(f"weighting={weighting!r}: choose one of {', '.join(WEIGHTINGS)}.")


def scorecam_map(activations: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ReLU(sum_k w_k A_k) over (h, w, k) activations."""
    return np.maximum(np.tensordot(activations, weights, axes=([-1], [0])), 0.0).astype(np.float32)


def layer_activations(m: ModelHandle, x: np.ndarray, layer: str) -> np.ndarray:
    """Activations of ``layer`` for a prepared batch, through a compiled function cached per layer."""
    h, w, c = m.input_shape

    def build():
        @tf.function(input_signature=[tf.TensorSpec([None, h, w, c], tf.float32)])
        def acts(batch):
            _, tapped = m.run(batch, taps=(layer,))
            return tapped[layer]

        return acts

    fn = m.cached(("activations", layer), build)
    return fn(tf.constant(x, tf.float32)).numpy()


def scorecam(
    m: ModelHandle,
    x: np.ndarray,
    target: int,
    layer: str | None = None,
    max_channels: int = 64,
    weighting: str = "softmax over channels",
    batch_size: int = 0,
    progress=None,
    **_,
) -> MethodResult:
    layer = layer or m.last_conv_layer
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting={weighting!r}: choose one of {', '.join(WEIGHTINGS)}.")
    acts = layer_activations(m, x, layer)[0].astype(np.float32)
    channels = select_channels(acts, int(max_channels))
    kept = acts[..., channels]
    maps = np.ascontiguousarray(np.transpose(kept, (2, 0, 1)))
    h, w, c = m.input_shape
    fn = compiled_composite(
        m,
        "scorecam",
        masked_copies,
        [tf.TensorSpec([h, w, c], tf.float32), tf.TensorSpec([None, None, None], tf.float32)],
    )
    image = tf.constant(x[0], tf.float32)

    def run_batch(i: int, j: int) -> np.ndarray:
        return fn(image, tf.constant(maps[i:j])).numpy()

    logits = run_batched(m, len(channels), run_batch, batch_size, progress, "Score-CAM masks")
    weights = scorecam_weights(logits, target, weighting)
    extras = {
        "channels": channels,
        "weights": weights,
        "masked_scores": logits[:, target],
        "layer_map_shape": acts.shape[:2],
    }
    return MethodResult(scorecam_map(kept, weights), extras)


def scorecam_passes(params: dict, input_shape: tuple[int, int, int]) -> int:
    """One forward pass for the layer's activations, then one per masked copy.

    The masked copies are ``max_channels`` or, for a layer with fewer channels, as many as it
    has: the layer is not known here, so this is an upper bound (exact whenever the layer
    has at least ``max_channels`` channels, e.g. the last conv layer of any zoo model).
    """
    return int(params["max_channels"]) + 1


# Defaults: those of ``scorecam``'s keyword arguments.
register(
    Method(
        name="scorecam",
        title="Score-CAM",
        fn=scorecam,
        paper="Wang et al. 2020",
        kind="cam",
        uses_layer=True,
        backward=False,  # forward passes only: masked copies of the picture
        passes=scorecam_passes,
        params=(
            Param(
                "max_channels",
                "int",
                help="Masked copies to score: the layer's channels with the most varied maps (all if fewer).",
                min=1,
                max=4096,
                step=1,
            ),
            Param(
                "weighting",
                "choice",
                help="Channel weights: softmax of the target logits over channels (the paper), "
                "or the target's class probability (the authors' code, tf-keras-vis).",
                choices=WEIGHTINGS,
            ),
            Param(
                "batch_size",
                "int",
                help="Masked copies per forward pass; 0 = the fastest for this model, measured once.",
                min=0,
                max=1024,
                step=1,
            ),
        ),
        summary="Each feature map used as a mask on the picture; maps that keep the class score weigh more.",
    )
)
