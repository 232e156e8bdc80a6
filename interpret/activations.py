"""Activation maps: what each channel of a layer outputs for one picture.

Only the first conv layer's maps correspond directly to features of the input image: each
map shows where its filter's pattern occurs one layer below, and deeper maps respond to
patterns of maps, not of pixels (Zeiler & Fergus (2014), "Visualizing and Understanding
Convolutional Networks", ECCV, arXiv:1311.2901).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from models.handle import ModelHandle

FIRST_LAYER_NOTE = (
    "Only the first layer's activation maps correspond directly to features of the input picture: "
    "each map shows where its filter's pattern was found one layer below. Deeper maps respond to "
    "patterns in the maps beneath them, so they have no easy reading in terms of pixels."
)


@dataclass
class FeatureMaps:
    layer: str
    maps: np.ndarray  # float32 (h, w, channels)
    means: np.ndarray  # float32 (channels,)
    maxima: np.ndarray  # float32 (channels,)


def _check_layer(m: ModelHandle, layer: str) -> None:
    if layer not in m.conv_layers:
        raise ValueError(f"Layer {layer!r} has no (H, W, C) output in {m.name}; pick one of its conv layers.")


def tap_fn(m: ModelHandle, layer: str):
    """A compiled batch -> activations of ``layer`` function, cached on the handle."""
    h, w, c = m.input_shape

    def build():
        @tf.function(input_signature=[tf.TensorSpec([None, h, w, c])])
        def tap(x):
            _, tapped = m.run(x, taps=(layer,))
            return tapped[layer]

        return tap

    return m.cached(("tap", layer), build)


def layer_activations(
    m: ModelHandle, images: np.ndarray, layer: str, batch_size: int = 32, prepared: bool = False
) -> np.ndarray:
    """(N, h, w, C) activations of ``layer`` for pictures (or already prepared inputs)."""
    _check_layer(m, layer)
    x = images if prepared else m.prepare(images)
    fn = tap_fn(m, layer)
    outs = [fn(tf.constant(x[i : i + batch_size], tf.float32)).numpy() for i in range(0, len(x), batch_size)]
    return np.concatenate(outs, axis=0).astype(np.float32)


def feature_maps(m: ModelHandle, image: np.ndarray, layer: str) -> FeatureMaps:
    """The activation maps of ``layer`` for one picture."""
    maps = layer_activations(m, image, layer)[0]
    return FeatureMaps(layer, maps, maps.mean(axis=(0, 1)), maps.max(axis=(0, 1)))


def channel_order(means: np.ndarray, sort: bool) -> list[int]:
    """Channel indices: by decreasing mean activation when ``sort``, else in their own order."""
    idx = np.arange(len(means))
    return [int(i) for i in (np.argsort(-np.asarray(means), kind="stable") if sort else idx)]
