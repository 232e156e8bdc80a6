"""The activation index: every channel's peak in every picture of a dataset, from one pass."""

from __future__ import annotations

import io
import zipfile

import keras
import numpy as np
import pytest

from interpret.activation_index import channel_maps, channel_peaks, index_activations
from interpret.activations import layer_activations
from interpret.images import encode_png
from interpret.receptive_field import layer_receptive_field
from interpret.top_patches import patches_of
from models.datasets import from_pictures, load_dataset

L = keras.layers


def two_detectors() -> keras.Model:
    """conv (1x1) channel 0 copies the pixel, channel 1 is its negative plus 1; nothing else."""
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            L.Conv2D(2, 1, name="conv"),
            L.GlobalAveragePooling2D(),
            L.Dense(2, activation="softmax"),
        ]
    )
    model.get_layer("conv").set_weights([np.array([[[[1.0, -1.0]]]], np.float32), np.array([0.0, 1.0], np.float32)])
    return model


def dot(row: int, col: int, value: int, size: int = 8) -> np.ndarray:
    img = np.zeros((size, size), np.uint8)
    img[row, col] = value
    return img


def test_peaks_positions_and_means_by_hand(handle_of):
    m = handle_of(two_detectors())  # preprocessing 0..1: x = pixel / 255
    pixels = np.stack([dot(2, 5, 255), dot(7, 0, 51)])[..., None]
    p = channel_peaks(m, pixels, "conv")
    np.testing.assert_allclose(p.peaks[:, 0], [1.0, 0.2], atol=1e-6)
    np.testing.assert_array_equal(p.rows[:, 0], [2, 7])
    np.testing.assert_array_equal(p.cols[:, 0], [5, 0])
    np.testing.assert_allclose(p.means[:, 0], [1.0 / 64, 0.2 / 64], atol=1e-6)
    # channel 1 = 1 - x: largest (1.0) wherever the picture is black; the first such place in reading order
    np.testing.assert_allclose(p.peaks[:, 1], [1.0, 1.0], atol=1e-6)
    np.testing.assert_array_equal(p.rows[:, 1], [0, 0])
    np.testing.assert_allclose(p.means[:, 1], [1 - 1.0 / 64, 1 - 0.2 / 64], atol=1e-6)
    np.testing.assert_allclose(channel_maps(m, pixels, "conv", 0)[0, 2, 5], 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="Expected pictures of shape"):
        channel_peaks(m, pixels[..., 0], "conv")


def test_index_over_a_dataset_equals_the_activations_of_each_picture(tiny, handle_of, rng):
    m = handle_of(tiny.conv_softmax())
    pictures = [rng.integers(0, 256, (12, 12, 3), dtype=np.uint8) for _ in range(11)]
    layer = m.conv_layers[-1]
    index = index_activations(m, from_pictures(pictures), layer, batch_size=4)  # batches of 4, 4, 3
    acts = layer_activations(m, np.stack(pictures), layer)
    flat = acts.reshape(len(pictures), -1, acts.shape[-1])
    np.testing.assert_array_equal(index.indices, np.arange(11))
    np.testing.assert_allclose(index.peaks, flat.max(axis=1), atol=1e-6)
    np.testing.assert_allclose(index.means, flat.mean(axis=1), atol=1e-6)
    where = flat.argmax(axis=1)
    np.testing.assert_array_equal(index.rows, where // acts.shape[2])
    np.testing.assert_array_equal(index.cols, where % acts.shape[2])
    for c in range(index.channels):
        np.testing.assert_array_equal(index.strongest(c, 3), np.argsort(-flat.max(axis=1)[:, c], kind="stable")[:3])
        np.testing.assert_array_equal(
            index.strongest(c, 3, by="mean"), np.argsort(-flat.mean(axis=1)[:, c], kind="stable")[:3]
        )
    with pytest.raises(ValueError, match="channels 0.."):
        index.strongest(index.channels, 3)
    with pytest.raises(ValueError, match="rank by"):
        index.strongest(0, 3, by="median")
    with pytest.raises(ValueError, match="count=12"):
        index_activations(m, from_pictures(pictures), layer, count=12)


def test_patches_of_the_index_equal_top_patches(handle_of):
    from interpret.top_patches import top_patches

    m = handle_of(two_detectors())
    pictures = [dot(1, 1, 90), dot(6, 3, 250), dot(4, 4, 170)]
    ds = from_pictures(pictures, ids=["a", "b", "c"])
    index = index_activations(m, ds, "conv")
    patches = patches_of(index, ds, m.input_shape, layer_receptive_field(m, "conv"), channel=0, k=2)
    assert [(p.label, p.position) for p in patches] == [("b", (6, 3)), ("c", (4, 4))]
    assert patches[0].pixels.shape == (1, 1, 1) and patches[0].pixels[0, 0, 0] == 250  # a 1x1 field
    direct = top_patches(m, pictures, "conv", 0, k=2, labels=["a", "b", "c"])
    assert [(p.label, p.value, p.position) for p in direct] == [(p.label, p.value, p.position) for p in patches]


def test_a_picture_that_does_not_decode_is_skipped_and_named(handle_of):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("dots/a.png", encode_png(dot(3, 3, 200)))
        z.writestr("dots/broken.png", b"\x89PNG not really")
        z.writestr("dots/c.png", encode_png(dot(5, 2, 100)))
    ds = load_dataset(buf.getvalue(), name="dots.zip")
    m = handle_of(two_detectors())
    index = index_activations(m, ds, "conv", batch_size=2)
    assert [ds.ids[i] for i in index.indices] == ["dots/a.png", "dots/c.png"]
    assert any(p.startswith("dots/broken.png: skipped") for p in ds.problems)
    np.testing.assert_allclose(index.peaks[:, 0], [200 / 255, 100 / 255], atol=1e-6)


def test_picture_labels_name_the_class_and_the_file():
    from interpret.top_patches import picture_label

    samples = from_pictures([dot(1, 1, 9)], ids=["T-shirt/top 1"])  # a name, not a path
    assert picture_label(samples, 0) == "T-shirt/top 1"
    bundled = load_dataset("fashion-mnist-test", limit=2)
    assert picture_label(bundled, 1) == f"{bundled.class_names[bundled.labels[1]]} 00001"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("pets/cat/1.png", encode_png(dot(1, 1, 9)))
    assert picture_label(load_dataset(buf.getvalue()), 0) == "cat 1.png"
