"""Overlay maths on tiny arrays: normalisation, colour maps, blending."""

from __future__ import annotations

import numpy as np
import pytest

from interpret.render import colorize, normalize, overlay


def test_normalize_min_max():
    np.testing.assert_allclose(normalize(np.array([[2.0, 4.0], [6.0, 10.0]])), [[0, 0.25], [0.5, 1]])


def test_normalize_with_vmax_starts_at_zero_and_clips():
    np.testing.assert_allclose(normalize(np.array([1.0, 2.0, 8.0]), vmax=4.0), [0.25, 0.5, 1.0])


def test_normalize_signed_puts_zero_at_half():
    np.testing.assert_allclose(normalize(np.array([-2.0, 0.0, 1.0]), signed=True), [0.0, 0.5, 0.75])
    np.testing.assert_allclose(normalize(np.array([-1.0, 1.0, 4.0]), signed=True, vmax=2.0), [0.25, 0.75, 1.0])


def test_normalize_constant_and_non_finite_maps():
    np.testing.assert_array_equal(normalize(np.full((2, 3), 5.0)), np.zeros((2, 3)))
    np.testing.assert_array_equal(normalize(np.zeros((2, 2)), signed=True), np.full((2, 2), 0.5))
    out = normalize(np.array([np.nan, 1.0, 3.0]))
    np.testing.assert_allclose(out, [0.0, 1 / 3, 1.0])
    assert out.dtype == np.float32


def test_colorize_gray_and_jet_ends():
    gray = colorize(np.array([[0.0, 1.0]]), "gray")
    assert gray.dtype == np.uint8 and gray.shape == (1, 2, 3)
    np.testing.assert_array_equal(gray, [[[0, 0, 0], [255, 255, 255]]])
    jet = colorize(np.array([0.0, 1.0]), "jet")
    assert jet[0, 2] > 100 and jet[0, 0] == 0  # low = blue
    assert jet[1, 0] > 100 and jet[1, 2] == 0  # high = red
    ramp = colorize(np.linspace(0, 1, 11), "gray")[:, 0].astype(int)
    assert np.all(np.diff(ramp) > 0)


def test_colorize_unknown_colormap_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown colormap 'rainbowz'"):
        colorize(np.zeros((2, 2)), "rainbowz")


def test_overlay_blends_by_alpha():
    image = np.full((2, 2, 3), 100, np.uint8)
    heat = np.array([[0.0, 1.0], [1.0, 1.0]])  # normalised: 0 and 1 -> gray 0 and 255
    out = overlay(image, heat, alpha=0.25, cmap="gray")
    assert out.dtype == np.uint8 and out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out[0, 0], [75, 75, 75])  # 100 * 0.75 + 0 * 0.25
    np.testing.assert_array_equal(out[0, 1], [139, 139, 139])  # 100 * 0.75 + 255 * 0.25 = 138.75
    np.testing.assert_array_equal(overlay(image, heat, alpha=0.0), image)
    np.testing.assert_array_equal(overlay(image, heat, alpha=1.0, cmap="gray")[..., 0], [[0, 255], [255, 255]])


def test_overlay_resizes_the_map_and_accepts_gray_and_float_pictures():
    gray = np.full((6, 10), 0.5)  # float 0..1 grayscale
    out = overlay(gray, np.ones((3, 5)), alpha=0.0)
    assert out.shape == (6, 10, 3) and out.dtype == np.uint8
    assert np.all(out == 127)
    out = overlay(np.zeros((6, 10, 4), np.uint8), np.arange(15.0).reshape(3, 5), alpha=1.0, cmap="gray")
    assert out.shape == (6, 10, 3)
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255


def test_overlay_reads_integer_pictures_as_0_255():
    picture = np.full((2, 2, 3), 100, np.int64)
    np.testing.assert_array_equal(overlay(picture, np.ones((2, 2)), alpha=0.0), np.full((2, 2, 3), 100, np.uint8))


def test_overlay_signed_map_centres_zero():
    out = overlay(np.zeros((1, 3, 3), np.uint8), np.array([[-1.0, 0.0, 1.0]]), alpha=1.0, cmap="gray", signed=True)
    assert out[0, 0, 0] == 0 and out[0, 2, 0] == 255 and 126 <= out[0, 1, 0] <= 128


@pytest.mark.parametrize("alpha", [-0.1, 1.5])
def test_overlay_alpha_out_of_range(alpha):
    with pytest.raises(ValueError, match="alpha"):
        overlay(np.zeros((2, 2, 3), np.uint8), np.zeros((2, 2)), alpha=alpha)
