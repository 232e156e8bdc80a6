"""Filter tiles and statistics from known weights."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from interpret.filters import (
    filter_bank,
    filter_layers,
    filter_tiles,
    first_filter_layer,
    mosaic,
    normalize_each,
    weight_stats,
)

L = keras.layers


def known_kernel(cin: int = 3, cout: int = 4) -> np.ndarray:
    return np.arange(3 * 3 * cin * cout, dtype=np.float32).reshape(3, 3, cin, cout) - 20.0


def test_rgb_tiles_keep_each_filters_own_colours():
    k = known_kernel()
    tiles = filter_tiles(k, "auto")
    assert tiles.shape == (4, 3, 3, 3)
    np.testing.assert_array_equal(tiles[2, 1, 0], k[1, 0, :, 2])


def test_each_filter_is_normalised_on_its_own():
    tiles = np.stack([np.array([[0.0, 1.0]]), np.array([[-100.0, 100.0]]), np.array([[3.0, 3.0]])])
    out = normalize_each(tiles)
    np.testing.assert_allclose(out[0], [[0, 1]])
    np.testing.assert_allclose(out[1], [[0, 1]])
    np.testing.assert_allclose(out[2], [[0.5, 0.5]])


def test_mean_and_per_channel_modes():
    k = known_kernel(cin=2, cout=3)
    mean = filter_tiles(k, "auto")
    assert mean.shape == (3, 3, 3)
    np.testing.assert_allclose(mean[1, 2, 2], (k[2, 2, 0, 1] + k[2, 2, 1, 1]) / 2)
    per = filter_tiles(k, "channels")
    assert per.shape == (3, 2, 3, 3)
    assert per[2, 1, 0, 2] == k[0, 2, 1, 2]
    with pytest.raises(ValueError, match="3 input channels"):
        filter_tiles(k, "rgb")


def test_mosaic_places_tiles_row_by_row_with_gaps():
    tiles = np.arange(5, dtype=np.float32)[:, None, None] * np.ones((5, 2, 2), np.float32)
    out = mosaic(tiles, columns=3, gap=1)
    assert out.shape == (5, 8)
    assert out[0, 0] == 0 and out[0, 3] == 1 and out[3, 3] == 4
    assert np.isnan(out[2, 0]) and np.isnan(out[3, 6])


def test_weight_stats_by_hand():
    s = weight_stats(np.array([-2.0, 0.0, 2.0, 4.0]), np.array([1.0, 3.0]))
    assert s["weights"] == 4 and s["weight mean"] == 1.0 and s["weight min"] == -2 and s["weight max"] == 4
    assert s["near-zero share (|w| < 1% of max)"] == 0.25
    assert s["bias mean"] == 2.0 and s["bias std"] == 1.0


def test_filter_bank_of_a_nested_model(tiny, handle_of):
    model, base, _ = tiny.nested_sequential()
    m = handle_of(model)
    assert filter_layers(m) == ["base/conv1", "base/conv2"]
    assert first_filter_layer(m) == "base/conv1"
    bank = filter_bank(m)
    np.testing.assert_array_equal(bank.kernel, base.get_layer("conv1").kernel.numpy())
    assert bank.bias.shape == (4,) and bank.stats["weights"] == 3 * 3 * 3 * 4
    with pytest.raises(ValueError, match="no 2-D convolution kernel"):
        filter_bank(m, "base/bn1")


def test_depthwise_kernels_become_one_channel_filters(handle_of):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            L.Conv2D(3, 3, name="c"),
            L.DepthwiseConv2D(3, depth_multiplier=2, name="dw"),
            L.GlobalAveragePooling2D(),
            L.Dense(2, activation="softmax"),
        ]
    )
    m = handle_of(model)
    bank = filter_bank(m, "dw")
    assert bank.kernel.shape == (3, 3, 1, 6)
    assert filter_tiles(bank.kernel).shape == (6, 3, 3)  # grey tiles for one-channel filters
