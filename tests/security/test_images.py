"""The image corpus: every awkward picture gives the right pixels, every bad file a clear message."""

from __future__ import annotations

import io
import time

import image_corpus as corpus
import numpy as np
import pytest
from PIL import Image

from interpret.images import ImageError, jpeg_scan_count, read_image


@pytest.mark.parametrize("case", list(corpus.GOOD))
def test_awkward_pictures_decode_to_the_expected_pixels(case: str) -> None:
    data, expected, tolerance = corpus.GOOD[case]()
    got = read_image(data)
    assert got.dtype == np.uint8
    assert got.shape == expected.shape, f"{case}: {got.shape} != {expected.shape}"
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= tolerance, case


@pytest.mark.parametrize("case", list(corpus.BAD))
def test_bad_files_get_a_clear_message(case: str) -> None:
    make, phrase = corpus.BAD[case]
    with pytest.raises(ImageError, match=phrase):
        read_image(make())


def test_exif_rotation_puts_the_red_corner_top_right() -> None:
    """Orientation 6: the stored top-left (red) is shown at the top right, and the picture is portrait."""
    data, _, _ = corpus.exif_png(6)()
    got = read_image(data)
    assert got.shape[:2] == (8, 4)
    assert tuple(got[0, -1]) == corpus.RED and tuple(got[-1, 0]) == corpus.WHITE


def test_pixel_cap_is_checked_from_the_header_and_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    picture = corpus.save(Image.new("RGB", (100, 100), corpus.RED), "PNG")
    assert read_image(picture).shape == (100, 100, 3)
    monkeypatch.setenv("CNN_LENS_MAX_PIXELS", "5000")
    with pytest.raises(ImageError, match="CNN_LENS_MAX_PIXELS"):
        read_image(picture)
    assert read_image(picture, max_pixels=10_000).shape == (100, 100, 3)


def test_paths_and_file_objects_take_the_same_path(tmp_path) -> None:
    data, expected, _ = corpus.palette()
    (tmp_path / "p.png").write_bytes(data)
    np.testing.assert_array_equal(read_image(tmp_path / "p.png"), expected)
    with open(tmp_path / "p.png", "rb") as f:
        np.testing.assert_array_equal(read_image(f), expected)
    with pytest.raises(ImageError, match="No such image"):
        read_image(tmp_path / "missing.png")


def test_the_scan_count_follows_the_markers() -> None:
    assert jpeg_scan_count(corpus.progressive_jpeg(32)) == 10
    assert jpeg_scan_count(corpus.progressive_jpeg(32, gray=True)) == 6
    assert jpeg_scan_count(corpus.save(Image.new("RGB", (16, 16), corpus.RED), "JPEG")) == 1
    assert jpeg_scan_count(corpus.many_scan_jpeg(16, 300)) == 300
    assert jpeg_scan_count(corpus.many_scan_jpeg(16, 300), stop=100) == 101  # stops counting past the cap
    # restart markers, stuffed 0xFF bytes, and a whole JPEG (scans included) or bare SOS bytes inside a
    # comment segment are not scans of the picture
    noisy = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    comment = corpus.progressive_jpeg(16) + b"\xff\xda\x00\x08" * 200
    tricky = corpus.save(Image.fromarray(noisy), "JPEG", progressive=True, restart_marker_blocks=1, comment=comment)
    assert b"\xff\xd0" in tricky and b"\xff\x00" in tricky and tricky.count(b"\xff\xda") > 200
    assert jpeg_scan_count(tricky) == 10
    assert read_image(tricky).shape == (64, 64, 3)


def test_the_many_scan_jpeg_is_a_real_picture_that_pillow_decodes() -> None:
    """The refusal is of a live threat: without the cap, libjpeg decodes every one of the scans."""
    data = corpus.many_scan_jpeg(16, 5_000)
    img = Image.open(io.BytesIO(data))
    img.load()
    assert img.size == (16, 16) and img.info.get("progressive")


def test_a_many_scan_jpeg_is_refused_quickly_before_decoding() -> None:
    data = corpus.many_scan_jpeg(2048, 5_000)  # about 12 s for Pillow to decode on a laptop-class core
    assert len(data) < 200_000
    started = time.perf_counter()
    with pytest.raises(ImageError, match=r"the upload is a JPEG with more than 100 scans .*CNN_LENS_MAX_JPEG_SCANS"):
        read_image(data)
    assert time.perf_counter() - started < 0.5


def test_the_scan_cap_is_configurable_and_inclusive(monkeypatch: pytest.MonkeyPatch) -> None:
    at_cap = corpus.many_scan_jpeg(16, 100)
    assert read_image(at_cap).shape == (16, 16, 3)
    assert read_image(corpus.many_scan_jpeg(16, 300), max_scans=300).shape == (16, 16, 3)
    monkeypatch.setenv("CNN_LENS_MAX_JPEG_SCANS", "5")
    with pytest.raises(ImageError, match="more than 5 scans"):
        read_image(corpus.progressive_jpeg(16))
    assert read_image(corpus.save(Image.new("RGB", (16, 16), corpus.RED), "JPEG")).shape == (16, 16, 3)
