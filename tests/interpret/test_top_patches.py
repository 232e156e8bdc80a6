"""Top-activating patches: known detector, known pictures, known answer; zip validation."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from interpret.top_patches import crop, top_patches

L = keras.layers


def dot_detector() -> keras.Model:
    """conv1 (3x3, valid) channel 0 sums its window; pooling 2x2; conv2 channel 0 copies its centre."""
    model = keras.Sequential(
        [
            keras.Input((16, 16, 1)),
            L.Conv2D(2, 3, name="conv1"),
            L.MaxPooling2D(2, name="pool"),
            L.Conv2D(1, 3, name="conv2"),
            L.GlobalAveragePooling2D(),
            L.Dense(2, activation="softmax"),
        ]
    )
    k1 = np.zeros((3, 3, 1, 2), np.float32)
    k1[..., 0, 0] = 1.0
    model.get_layer("conv1").set_weights([k1, np.zeros(2, np.float32)])
    k2 = np.zeros((3, 3, 2, 1), np.float32)
    k2[1, 1, 0, 0] = 1.0
    model.get_layer("conv2").set_weights([k2, np.zeros(1, np.float32)])
    return model


def dot_picture(row: int, col: int, value: int) -> np.ndarray:
    img = np.zeros((16, 16), np.uint8)
    img[row, col] = value
    return img


def test_brightest_dot_ranks_first_and_its_field_is_cropped(handle_of):
    m = handle_of(dot_detector())
    images = [dot_picture(5, 5, 100), dot_picture(8, 3, 250), dot_picture(12, 12, 180)]
    patches = top_patches(m, images, "conv2", 0, k=2, labels=["a", "b", "c"])
    assert [p.label for p in patches] == ["b", "c"]
    assert patches[0].value == pytest.approx(250 / 255, abs=1e-5)
    # conv1 field 3, pool 4 (jump 2), conv2 4 + 2 * 2 = 8 (jump 2): unit (r, c) sees rows 2r .. 2r+7
    first = patches[0]
    top, left, bottom, right = first.box
    assert bottom - top == 8 and right - left == 8
    assert top == 2 * first.position[0] and left == 2 * first.position[1]
    assert top <= 8 < bottom and left <= 3 < right  # the dot lies inside the patch
    assert first.pixels.shape == (8, 8, 1)
    assert first.pixels[8 - top, 3 - left, 0] == 250


def test_channel_out_of_range(handle_of):
    m = handle_of(dot_detector())
    with pytest.raises(ValueError, match="channels 0..0"):
        top_patches(m, [dot_picture(1, 1, 9)], "conv2", 3)
    with pytest.raises(ValueError, match="No pictures"):
        top_patches(m, [], "conv2", 0)


def test_crop_pads_outside_the_picture():
    pic = np.arange(16, dtype=np.uint8).reshape(4, 4, 1)
    out = crop(pic, (-1, 2, 2, 5), pad=200)
    assert out.shape == (3, 3, 1)
    assert out[0, 0, 0] == 200 and out[1, 0, 0] == 2 and out[2, 1, 0] == 7 and out[1, 2, 0] == 200
