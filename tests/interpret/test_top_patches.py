"""Top-activating patches: known detector, known pictures, known answer; zip validation."""

from __future__ import annotations

import io
import zipfile

import keras
import numpy as np
import pytest

from interpret.images import encode_png
from interpret.top_patches import crop, images_from_zip, top_patches

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


def make_zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


def test_zip_keeps_pictures_and_explains_skipped_entries(rng):
    good = encode_png(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8))
    data = make_zip(
        {
            "pics/a.png": good,
            "pics/b.png": encode_png(np.full((5, 5), 7, np.uint8)),
            "notes.txt": b"hello",
            "broken.png": b"not a png at all",
            "__MACOSX/._a.png": b"junk",
        }
    )
    images, names, problems = images_from_zip(data)
    assert names == ["a.png", "b.png"]
    assert images[0].shape == (10, 12, 3) and images[1].shape == (5, 5)
    assert len(problems) == 2
    assert any(p.startswith("notes.txt: skipped, not a picture") for p in problems)
    assert any(p.startswith("broken.png: skipped") for p in problems)


def test_bad_zips_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="not a zip file"):
        images_from_zip(b"plain bytes")
    with pytest.raises(ValueError, match="no readable picture"):
        images_from_zip(make_zip({"a.txt": b"x"}))
    with pytest.raises(ValueError, match="limit is 2"):
        images_from_zip(make_zip({f"{i}.png": b"x" for i in range(3)}), max_entries=2)
    bomb = make_zip({"big.png": bytes(5_000_000)})
    _, _, problems = images_from_zip(make_zip({"ok.png": encode_png(np.zeros((3, 3), np.uint8))}))
    assert problems == []
    with pytest.raises(ValueError, match="zip bomb"):
        images_from_zip(bomb)
