"""Activation maps against values computed by hand."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from interpret.activations import channel_order, feature_maps, layer_activations

L = keras.layers


def identity_and_sum_model() -> keras.Model:
    """conv: channel 0 copies the centre pixel, channel 1 sums the 3x3 window (valid padding)."""
    model = keras.Sequential(
        [
            keras.Input((6, 6, 1)),
            L.Conv2D(2, 3, name="conv"),
            L.GlobalAveragePooling2D(),
            L.Dense(2, activation="softmax"),
        ]
    )
    k = np.zeros((3, 3, 1, 2), np.float32)
    k[1, 1, 0, 0] = 1.0
    k[:, :, 0, 1] = 1.0
    model.get_layer("conv").set_weights([k, np.array([0.0, 0.5], np.float32)])
    return model


def test_feature_maps_by_hand(handle_of):
    m = handle_of(identity_and_sum_model())
    image = np.arange(36, dtype=np.uint8).reshape(6, 6) * 7
    fm = feature_maps(m, image, "conv")
    x = image.astype(np.float32) / 255.0
    assert fm.maps.shape == (4, 4, 2)
    np.testing.assert_allclose(fm.maps[..., 0], x[1:5, 1:5], atol=1e-6)
    window_sums = np.array([[x[i : i + 3, j : j + 3].sum() for j in range(4)] for i in range(4)]) + 0.5
    np.testing.assert_allclose(fm.maps[..., 1], window_sums, atol=1e-5)
    np.testing.assert_allclose(fm.means, fm.maps.mean(axis=(0, 1)))
    assert channel_order(fm.means, sort=True) == [1, 0]
    assert channel_order(fm.means, sort=False) == [0, 1]


def test_nested_layers_and_batches(tiny, handle_of, rng):
    model, base, _ = tiny.nested_sequential()
    m = handle_of(model)
    images = rng.integers(0, 256, (5, 12, 12, 3), dtype=np.uint8)
    acts = layer_activations(m, images, "base/relu1", batch_size=2)
    expected = keras.Model(base.input, base.get_layer("relu1").output)(images.astype(np.float32) / 255.0).numpy()
    np.testing.assert_allclose(acts, expected, atol=1e-5)
    with pytest.raises(ValueError, match="no \\(H, W, C\\) output"):
        layer_activations(m, images, "gap")
