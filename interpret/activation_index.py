"""Which pictures of a dataset excite each channel of a layer most: one pass, every channel at once.

Girshick, Donahue, Darrell & Malik (2014), "Rich feature hierarchies for accurate object
detection and semantic segmentation", CVPR, arXiv:1311.2524, Fig. 4 (the top regions of
pool5 units over a whole dataset); Zeiler & Fergus (2014), "Visualizing and Understanding
Convolutional Networks", ECCV, arXiv:1311.2901, Fig. 2 (the strongest activations of a
feature map across the validation set).

The dataset goes through the model once, in batches; for every picture and every channel of
the layer the index keeps the channel's largest activation, where it is in the map (row,
column) and the map's mean. Then the strongest pictures of *any* channel, and their patches,
are a sort of one column, with no second pass::

    >>> index = index_activations(m, load_dataset("fashion-mnist-test"), "block3_conv2")
    >>> index.strongest(channel=5, k=8)   # positions in the index, strongest first
    >>> interpret.top_patches.patches_of(index, ds, m.input_shape, field, channel=5, k=8)

Memory is ``pictures x channels x 16`` bytes (10,000 pictures of a 128-channel layer: 20 MB).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from interpret.activations import layer_activations
from interpret.progress import Progress
from models.datasets import Dataset
from models.handle import ModelHandle

RANKINGS = ("peak", "mean")
MAX_K = 200


@dataclass
class ChannelPeaks:
    """For a batch of pictures: each channel's largest activation, where it is, and the map's mean."""

    peaks: np.ndarray  # float32 (n, C)
    rows: np.ndarray  # int32 (n, C): row of the peak in the activation map
    cols: np.ndarray  # int32 (n, C)
    means: np.ndarray  # float32 (n, C)


def channel_peaks(m: ModelHandle, pixels: np.ndarray, layer: str) -> ChannelPeaks:
    """The peaks of every channel of ``layer`` for uint8 pictures (n, h, w, c) at the model's input size."""
    pixels = np.asarray(pixels)
    if pixels.ndim != 4 or tuple(pixels.shape[1:]) != tuple(m.input_shape):
        raise ValueError(f"Expected pictures of shape (n, {', '.join(map(str, m.input_shape))}); got {pixels.shape}.")
    acts = layer_activations(m, m.preprocessing(pixels.astype(np.float32)), layer, prepared=True)
    n, _, w, c = acts.shape
    flat = acts.reshape(n, -1, c)
    where = np.argmax(flat, axis=1)  # (n, C): the first largest, in reading order
    peaks = np.take_along_axis(flat, where[:, None, :], axis=1)[:, 0, :]
    return ChannelPeaks(
        peaks.astype(np.float32),
        (where // w).astype(np.int32),
        (where % w).astype(np.int32),
        flat.mean(axis=1).astype(np.float32),
    )


def channel_maps(m: ModelHandle, pixels: np.ndarray, layer: str, channel: int) -> np.ndarray:
    """One channel's activation maps (n, H, W) for a few pictures (uint8, at the model's input size)."""
    acts = layer_activations(m, m.preprocessing(np.asarray(pixels, np.float32)), layer, prepared=True)
    if not 0 <= channel < acts.shape[-1]:
        raise ValueError(f"Channel {channel} does not exist: {layer} has channels 0..{acts.shape[-1] - 1}.")
    return acts[..., channel]


@dataclass
class ActivationIndex:
    """Every channel's peak in every searched picture of a dataset, for one layer."""

    layer: str
    indices: np.ndarray  # int64 (N,): the dataset's index of each searched picture (those that decoded)
    peaks: np.ndarray  # float32 (N, C)
    rows: np.ndarray  # int16 (N, C)
    cols: np.ndarray  # int16 (N, C)
    means: np.ndarray  # float32 (N, C)
    seconds: float = 0.0

    @property
    def channels(self) -> int:
        return int(self.peaks.shape[1])

    def strongest(self, channel: int, k: int = 9, by: str = "peak") -> np.ndarray:
        """Positions (into ``indices``) of the ``k`` pictures where ``channel`` is strongest, strongest first.

        ``by="peak"``: the channel's largest activation (one place fires hard); ``"mean"``: its
        mean over the map (it fires everywhere). Ties keep the dataset's order.
        """
        if by not in RANKINGS:
            raise ValueError(f"by={by!r}: rank by {' or '.join(RANKINGS)}.")
        if not 0 <= int(channel) < self.channels:
            raise ValueError(f"Channel {channel} does not exist: {self.layer} has channels 0..{self.channels - 1}.")
        if not 1 <= int(k) <= MAX_K:
            raise ValueError(f"k={k}: ask for 1 to {MAX_K} pictures.")
        values = (self.peaks if by == "peak" else self.means)[:, int(channel)]
        return np.argsort(-values, kind="stable")[: int(k)]


def index_activations(
    m: ModelHandle,
    dataset: Dataset,
    layer: str,
    count: int | None = None,
    batch_size: int = 64,
    progress: Callable[[float, str], None] | Progress | None = None,
    peaks: Callable[..., ChannelPeaks] | None = None,
) -> ActivationIndex:
    """The first ``count`` pictures of ``dataset`` (all for None) through ``layer``, batch by batch.

    Each picture is read and scaled to the model's input as it comes; pictures that do not
    decode are left out (and listed in ``dataset.problems``). ``peaks`` computes one batch's
    :class:`ChannelPeaks` (``channel_peaks`` by default; the app passes one that runs in an
    uploaded model's worker).
    """
    progress = progress if isinstance(progress, Progress) else Progress(progress)
    total = len(dataset) if count is None else int(count)
    if not 1 <= total <= len(dataset):
        raise ValueError(f"count={count}: {dataset.name} has {len(dataset)} pictures.")
    peaks = peaks or channel_peaks
    started = time.perf_counter()
    kept, parts, done = [], [], 0
    for indices, pixels in dataset.batches(batch_size, m.input_shape, indices=np.arange(total)):
        if len(indices):
            parts.append(peaks(m, pixels=pixels, layer=layer))
            kept.append(indices)
        done = min(done + batch_size, total)
        rate = done / max(time.perf_counter() - started, 1e-9)
        progress(done / total, f"Activations of {layer}: {done:,}/{total:,} pictures ({rate:.0f}/s)")
    if not parts:
        raise ValueError(f"None of the {total:,} pictures could be read; see the skipped entries.")
    return ActivationIndex(
        layer,
        np.concatenate(kept).astype(np.int64),
        np.concatenate([p.peaks for p in parts]),
        np.concatenate([p.rows for p in parts]).astype(np.int16),
        np.concatenate([p.cols for p in parts]).astype(np.int16),
        np.concatenate([p.means for p in parts]),
        time.perf_counter() - started,
    )
