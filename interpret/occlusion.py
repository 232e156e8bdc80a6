"""Occlusion: slide a grey (or blurred) patch over the picture and watch the class score.

Zeiler & Fergus (2014), "Visualizing and Understanding Convolutional Networks",
ECCV, arXiv:1311.2901 (Sec. 4.2, "Occlusion Sensitivity").

Each patch position gives one occluded copy of the input. The map at a pixel is the
*signed* change of the target logit, ``score(x) - score(occluded x)``, averaged over
the patches that cover the pixel: positive where hiding the pixel lowers the score
(evidence for the class), negative where hiding it raises the score. All copies are
built and scored in batches inside one compiled function (``interpret.batching``).

Patches are placed every ``stride`` pixels from the top-left corner, plus one more row
and column flush with the bottom and right edges, so every pixel is covered by a full
patch.
"""

from __future__ import annotations

import cv2
import numpy as np
import tensorflow as tf

from interpret.batching import compiled_composite, run_batched
from interpret.explanation import MethodResult
from interpret.registry import Method, Param, SharedPass, register
from models.handle import ModelHandle

MAX_MASKS = 4096
FILLS = ("zero", "mean", "blur")


def auto_patch(shape: tuple[int, int]) -> int:
    """Default patch side: 1/14 of the shorter side (16 px at 224, 2 px at 28)."""
    return max(1, round(min(shape) / 14))


def patch_and_stride(shape: tuple[int, int], patch: int, stride: int) -> tuple[int, int]:
    """The patch side and stride in pixels, ``0`` meaning automatic: 1/14 of the shorter side, stride = patch."""
    patch = int(patch) or auto_patch(shape)
    return patch, int(stride) or patch


def patch_starts(size: int, patch: int, stride: int) -> list[int]:
    """Top (or left) edges of the patches along one axis: every ``stride``, plus one flush with the end."""
    if patch < 1 or stride < 1:
        raise ValueError(f"Patch ({patch}) and stride ({stride}) must be at least 1 pixel.")
    if patch > size:
        raise ValueError(f"The patch ({patch} px) is larger than the model input ({size} px); choose a smaller patch.")
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return starts


def patch_corners(shape: tuple[int, int], patch: int, stride: int) -> np.ndarray:
    """(N, 2) top-left corners (row, column) of every patch, row by row."""
    ys = patch_starts(int(shape[0]), patch, stride)
    xs = patch_starts(int(shape[1]), patch, stride)
    n = len(ys) * len(xs)
    if n > MAX_MASKS:
        raise ValueError(
            f"Patch {patch} with stride {stride} on a {shape[0]}x{shape[1]} input makes {n} occluded copies; "
            f"the cap is {MAX_MASKS}. Choose a larger stride or patch."
        )
    return np.array([(y, x) for y in ys for x in xs], dtype=np.int64).reshape(-1, 2)


def masks_at(shape: tuple[int, int], corners: np.ndarray, patch: int) -> np.ndarray:
    """Boolean masks (len(corners), H, W): True inside each patch."""
    masks = np.zeros((len(corners), int(shape[0]), int(shape[1])), dtype=bool)
    for k, (y, x) in enumerate(corners):
        masks[k, y : y + patch, x : x + patch] = True
    return masks


def occlusion_masks(shape: tuple[int, int], patch: int, stride: int) -> np.ndarray:
    """All occlusion masks for an (H, W) input: bool (N, H, W), True where the patch hides the picture."""
    return masks_at(shape, patch_corners(shape, patch, stride), patch)


def occlusion_map(deltas: np.ndarray, corners: np.ndarray, shape: tuple[int, int], patch: int) -> np.ndarray:
    """Per-pixel mean of the score changes ``deltas`` (N,) of the patches covering each pixel."""
    total = np.zeros(shape, dtype=np.float64)
    count = np.zeros(shape, dtype=np.float64)
    for d, (y, x) in zip(deltas, corners, strict=True):
        total[y : y + patch, x : x + patch] += d
        count[y : y + patch, x : x + patch] += 1.0
    return (total / np.maximum(count, 1.0)).astype(np.float32)


def occluded_copies(image: tf.Tensor, filler: tf.Tensor, corners: tf.Tensor, patch: tf.Tensor) -> tf.Tensor:
    """(b, H, W, C) copies of ``image`` with the patch at each of the (b, 2) ``corners`` taken from ``filler``.

    A corner outside the picture (e.g. (H, W)) hides nothing: that copy is the picture itself.
    """
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    rows = tf.range(h)[None, :, None]
    cols = tf.range(w)[None, None, :]
    y0 = corners[:, 0, None, None]
    x0 = corners[:, 1, None, None]
    inside = (rows >= y0) & (rows < y0 + patch) & (cols >= x0) & (cols < x0 + patch)
    return tf.where(inside[..., None], filler[None], image[None])


def fill_image(x: np.ndarray, fill: str, patch: int) -> np.ndarray:
    """What an occluded pixel shows, in the model's input space: zeros, the mean colour, or a blur."""
    if fill == "zero":
        return np.zeros_like(x)
    if fill == "mean":
        return np.broadcast_to(x.mean(axis=(0, 1), keepdims=True), x.shape).astype(np.float32)
    if fill == "blur":
        sigma = max(1.0, patch / 2.0)
        return cv2.GaussianBlur(x, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT).reshape(x.shape)
    raise ValueError(f"fill={fill!r}: choose one of {', '.join(FILLS)}.")


def occluded_logits(
    m: ModelHandle,
    x: np.ndarray,
    patch: int = 0,
    stride: int = 0,
    fill: str = "zero",
    batch_size: int = 0,
    progress=None,
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Logits of every class for the picture (row 0) and each occluded copy (rows 1..N).

    Returns (logits (N+1, K), corners (N, 2), patch, stride) with the automatic sizes resolved,
    so callers can build maps for any number of targets from one set of forward passes.
    """
    shape = m.input_shape[:2]
    patch, stride = patch_and_stride(shape, patch, stride)
    if stride > patch:
        raise ValueError(
            f"stride={stride} is larger than patch={patch}: some pixels would never be hidden. "
            "Choose a stride no larger than the patch."
        )
    corners = patch_corners(shape, patch, stride)
    image = np.asarray(x[0], dtype=np.float32)
    filler = fill_image(image, fill, patch)
    # item 0 hides nothing (a corner outside the picture): the baseline score, in the same stream
    stream = np.vstack([[shape], corners]).astype(np.int32)
    h, w, c = m.input_shape
    fn = compiled_composite(
        m,
        "occlusion",
        occluded_copies,
        [
            tf.TensorSpec([h, w, c], tf.float32),
            tf.TensorSpec([h, w, c], tf.float32),
            tf.TensorSpec([None, 2], tf.int32),
            tf.TensorSpec([], tf.int32),
        ],
    )
    picture, hidden, side = tf.constant(image), tf.constant(filler), tf.constant(patch, tf.int32)

    def run_batch(i: int, j: int) -> np.ndarray:
        return fn(picture, hidden, tf.constant(stream[i:j]), side).numpy()

    logits = run_batched(m, len(stream), run_batch, batch_size, progress, "occlusion")
    return logits, corners, patch, stride


def occlusion(
    m: ModelHandle,
    x: np.ndarray,
    target: int,
    patch: int = 0,
    stride: int = 0,
    fill: str = "zero",
    batch_size: int = 0,
    progress=None,
    **_,
) -> MethodResult:
    logits, corners, patch, stride = occluded_logits(m, x, patch, stride, fill, batch_size, progress)
    scores = logits[:, target]
    deltas = scores[0] - scores[1:]
    heat = occlusion_map(deltas, corners, m.input_shape[:2], patch)
    extras = {
        "baseline_score": float(scores[0]),
        "scores": scores[1:],
        "corners": corners,
        "patch": patch,
        "stride": stride,
    }
    return MethodResult(heat, extras, score=float(scores[0]))


def occlusion_passes(params: dict, input_shape: tuple[int, int, int]) -> int:
    """One forward pass per patch position, plus one for the picture itself (the baseline score)."""
    shape = tuple(input_shape[:2])
    patch, stride = patch_and_stride(shape, params["patch"], params["stride"])
    return len(patch_corners(shape, patch, stride)) + 1


def logits_for_targets(m: ModelHandle, x: np.ndarray, targets: list[int], layer, params: dict, progress):
    """One set of occluded forward passes scores every class: (logits, corners, patch, input size, targets)."""
    logits, corners, patch, _ = occluded_logits(
        m, x, params["patch"], params["stride"], params["fill"], params["batch_size"], progress
    )
    return logits, corners, patch, m.input_shape[:2], list(targets)


def occlusion_of_row(out, i: int) -> np.ndarray:
    """The occlusion map of ``targets[i]`` from :func:`logits_for_targets`."""
    logits, corners, patch, shape, targets = out
    t = targets[i]
    return occlusion_map(logits[0, t] - logits[1:, t], corners, shape, patch)


# Defaults: those of ``occlusion``'s keyword arguments.
register(
    Method(
        name="occlusion",
        title="Occlusion",
        fn=occlusion,
        paper="Zeiler & Fergus 2014",
        kind="perturbation",
        signed=True,
        passes=occlusion_passes,
        shared_pass=SharedPass("occluded copies", logits_for_targets, occlusion_of_row),
        params=(
            Param(
                "patch",
                "int",
                help="Side of the square patch in model-input pixels; 0 = 1/14 of the input side.",
                min=0,
                max=512,
                step=1,
            ),
            Param(
                "stride",
                "int",
                help="Step between patch positions in pixels; 0 = the patch size.",
                min=0,
                max=512,
                step=1,
            ),
            Param(
                "fill", "choice", help="What hides the patch: zero input, the mean colour, or a blur.", choices=FILLS
            ),
            Param(
                "batch_size",
                "int",
                help="Occluded copies per forward pass; 0 = the fastest for this model, measured once.",
                min=0,
                max=1024,
                step=1,
            ),
        ),
        summary="Score drop when a patch hides each region (positive: the region supports the class).",
    )
)
