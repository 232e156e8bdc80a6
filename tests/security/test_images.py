"""The image corpus: every awkward picture gives the right pixels, every bad file a clear message."""

from __future__ import annotations

import image_corpus as corpus
import numpy as np
import pytest
from PIL import Image

from interpret.images import ImageError, read_image


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
