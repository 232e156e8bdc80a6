"""Occlusion: exact masks, hand-computed score changes on a linear model, batching, progress, bad input."""

from __future__ import annotations

import threading

import keras
import numpy as np
import pytest

from interpret import Cancelled, explain
from interpret.occlusion import (
    MAX_MASKS,
    fill_image,
    occluded_copies,
    occlusion_map,
    occlusion_masks,
    patch_corners,
    patch_starts,
)


def linear_handle(handle_of, weights: np.ndarray, bias=(0.0, 0.0)):
    """Flatten -> Dense(2) with known weights: logit_t = sum_p weights[p, t] * x_p + bias_t."""
    h, w = weights.shape[:2]
    model = keras.Sequential([keras.Input((h, w, 1)), keras.layers.Flatten(), keras.layers.Dense(2, name="dense")])
    model.get_layer("dense").set_weights([weights.reshape(h * w, 2).astype(np.float32), np.asarray(bias, np.float32)])
    return handle_of(model)


def test_patch_starts_add_a_last_patch_flush_with_the_edge():
    assert patch_starts(4, 2, 2) == [0, 2]
    assert patch_starts(5, 2, 2) == [0, 2, 3]
    assert patch_starts(6, 3, 1) == [0, 1, 2, 3]
    assert patch_starts(3, 3, 5) == [0]


def test_occlusion_masks_exact():
    masks = occlusion_masks((3, 4), patch=2, stride=2)
    expected = np.zeros((4, 3, 4), dtype=bool)
    expected[0, 0:2, 0:2] = True  # corner (0, 0)
    expected[1, 0:2, 2:4] = True  # corner (0, 2)
    expected[2, 1:3, 0:2] = True  # corner (1, 0): flush with the bottom edge
    expected[3, 1:3, 2:4] = True  # corner (1, 2)
    assert masks.dtype == bool
    np.testing.assert_array_equal(masks, expected)
    np.testing.assert_array_equal(patch_corners((3, 4), 2, 2), [[0, 0], [0, 2], [1, 0], [1, 2]])


def test_compiled_copies_hide_exactly_the_masks(rng):
    image = rng.random((5, 7, 3)).astype(np.float32)
    filler = -np.ones_like(image)
    corners = patch_corners((5, 7), 3, 2)
    stream = np.vstack([[5, 7], corners]).astype(np.int32)  # first: a corner outside hides nothing
    copies = occluded_copies(image, filler, stream, np.int32(3)).numpy()
    np.testing.assert_array_equal(copies[0], image)
    expected = np.where(occlusion_masks((5, 7), 3, 2)[..., None], filler, image)
    np.testing.assert_array_equal(copies[1:], expected)


def test_every_pixel_is_covered_by_a_full_patch():
    masks = occlusion_masks((11, 7), patch=3, stride=3)
    assert (masks.sum(axis=(1, 2)) == 9).all()
    assert masks.any(axis=0).all()


def test_mask_count_is_capped_with_a_clear_message():
    with pytest.raises(ValueError, match=f"cap is {MAX_MASKS}"):
        occlusion_masks((224, 224), patch=2, stride=1)


def test_patch_larger_than_input_is_refused():
    with pytest.raises(ValueError, match="larger than the model input"):
        occlusion_masks((8, 8), patch=9, stride=1)


def test_occlusion_map_averages_overlapping_patches():
    corners = patch_corners((3, 3), 2, 1)  # (0,0) (0,1) (1,0) (1,1)
    heat = occlusion_map(np.array([8.0, 12.0, 20.0, 24.0]), corners, (3, 3), 2)
    expected = [[8, 10, 12], [14, 16, 18], [20, 22, 24]]
    np.testing.assert_allclose(heat, expected)


def test_hand_computed_signed_change_on_a_linear_model(handle_of):
    # logit_0 = sum_p w_p x_p with w = -4..4 over a 3x3 picture of ones (x = 255/255 = 1).
    # Zero fill, patch 2, stride 1: the four patches drop the logit by the sum of the weights
    # they hide: (0,0) -> -4-3-1+0 = -8, (0,1) -> -3-2+0+1 = -4, (1,0) -> -1+0+2+3 = 4, (1,1) -> 0+1+3+4 = 8.
    w = np.zeros((3, 3, 2))
    w[..., 0] = (np.arange(9) - 4).reshape(3, 3)
    m = linear_handle(handle_of, w, bias=(0.5, 0.0))
    e = explain(m, np.full((3, 3), 255, np.uint8), "occlusion", target=0, patch=2, stride=1, fill="zero")
    # each pixel: mean of the changes of the patches covering it
    expected = [[-8, -6, -4], [-2, 0, 2], [4, 6, 8]]
    np.testing.assert_allclose(e.heatmap, expected, atol=1e-5)
    np.testing.assert_allclose(e.extras["scores"], [0.5 + 0 - d for d in (-8, -4, 4, 8)], atol=1e-5)
    assert e.extras["baseline_score"] == pytest.approx(0.5)


def test_mean_fill_changes_the_score_by_the_difference_to_the_mean(handle_of):
    # 2x2 picture (0..1 values 0, 0.2, 0.4, 0.6 -> mean 0.3), weights 1..4, one 1x1 patch per pixel:
    # hiding pixel p with the mean changes logit by w_p * (x_p - 0.3).
    w = np.zeros((2, 2, 2))
    w[..., 1] = [[1, 2], [3, 4]]
    m = linear_handle(handle_of, w)
    picture = np.array([[0, 51], [102, 153]], np.uint8)
    e = explain(m, picture, "occlusion", target=1, patch=1, stride=1, fill="mean")
    x = picture / 255.0
    np.testing.assert_allclose(e.heatmap, w[..., 1] * (x - x.mean()), atol=1e-5)


def test_blur_fill_keeps_flat_regions_and_smooths_edges():
    flat = np.full((9, 9, 3), 0.25, np.float32)
    np.testing.assert_allclose(fill_image(flat, "blur", 4), flat, atol=1e-6)
    edge = np.zeros((9, 9, 1), np.float32)
    edge[:, 5:] = 1.0
    blurred = fill_image(edge, "blur", 4)
    assert blurred.shape == edge.shape
    assert 0.0 < blurred[4, 4, 0] < 1.0 and 0.0 < blurred[4, 5, 0] < 1.0


def test_result_does_not_depend_on_the_batch_size(tiny, handle_of, rng):
    m = handle_of(tiny.conv_softmax())
    picture = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    maps = [explain(m, picture, "occlusion", patch=3, stride=2, batch_size=b).heatmap for b in (1, 5, 0)]
    np.testing.assert_allclose(maps[0], maps[1], atol=1e-5)
    np.testing.assert_allclose(maps[0], maps[2], atol=1e-5)


def test_progress_is_reported_between_batches_and_can_cancel(tiny, handle_of, rng):
    m = handle_of(tiny.conv_softmax())
    picture = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    seen: list[float] = []
    explain(m, picture, "occlusion", patch=2, stride=2, batch_size=10, progress=lambda f, _msg: seen.append(f))
    # 36 patches + the picture itself = 37 copies -> 4 batches, each announced, then "done"
    assert len(seen) >= 4
    assert seen == sorted(seen) and seen[-1] == 1.0

    stop = threading.Event()

    def cancel_after_first_batch(fraction: float, _msg: str) -> None:
        if fraction > 0:
            stop.set()

    from interpret.progress import Progress

    with pytest.raises(Cancelled):
        explain(
            m, picture, "occlusion", patch=2, stride=2, batch_size=10, progress=Progress(cancel_after_first_batch, stop)
        )


def test_impossible_settings_raise_value_error(tiny, handle_of):
    m = handle_of(tiny.conv_softmax())
    picture = np.zeros((12, 12, 3), np.uint8)
    with pytest.raises(ValueError, match="stride=4 is larger than patch=2"):
        explain(m, picture, "occlusion", patch=2, stride=4)
    with pytest.raises(ValueError, match="larger than the model input"):
        explain(m, picture, "occlusion", patch=13)
    with pytest.raises(ValueError, match="fill"):
        explain(m, picture, "occlusion", fill="noise")
