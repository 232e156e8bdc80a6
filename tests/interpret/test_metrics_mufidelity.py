"""MuFidelity (Bhatt et al. 2020), Average Drop / Increase in Confidence (Chattopadhay et al. 2018), baselines."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from skimage.filters import sobel

from interpret.metrics import average_drop, baseline_map, mufidelity, mufidelity_probe
from interpret.metrics.average_drop import confidence_change, normalised_map
from interpret.metrics.mufidelity import cell_sums, subset_masks, upsample


def sum_model(handle_of, shape=(18, 18, 1)):
    """f(x) = sum(x): Flatten -> Dense(1, kernel of ones, no bias)."""
    model = keras.Sequential([keras.Input(shape), keras.layers.Flatten(), keras.layers.Dense(1, use_bias=False)])
    model.layers[-1].set_weights([np.ones((int(np.prod(shape)), 1), np.float32)])
    return handle_of(model)


def test_mufidelity_oracle_sum_of_x(handle_of, rng):
    # Xplique's own oracle: for f = sum(x), the attribution x is perfectly faithful, -x perfectly reversed.
    m = sum_model(handle_of)
    picture = rng.integers(1, 256, (18, 18), dtype=np.uint8)
    x = picture / 255.0
    # (to float32 precision: two subsets whose masses differ by less than the model's rounding may swap ranks)
    assert mufidelity(m, picture, x, target=0, grid=9, samples=64) == pytest.approx(1.0, abs=1e-4)
    assert mufidelity(m, picture, -x, target=0, grid=9, samples=64) == pytest.approx(-1.0, abs=1e-4)


def test_the_probe_is_shared_and_seeded(handle_of, rng):
    m = sum_model(handle_of)
    picture = rng.integers(1, 256, (18, 18), dtype=np.uint8)
    probe = mufidelity_probe(m, picture, target=0, samples=32, seed=3)
    again = mufidelity_probe(m, picture, target=0, samples=32, seed=3)
    np.testing.assert_array_equal(probe.masks, again.masks)
    np.testing.assert_allclose(probe.drops, again.drops)
    # the drop of each subset is the mass of what it removed (f = sum(x))
    x = picture / 255.0
    mass = np.array([x[upsample(mask, x.shape)].sum() for mask in probe.masks])
    np.testing.assert_allclose(probe.drops, mass, rtol=1e-4)
    assert mufidelity(m, picture, x, probe=probe) == pytest.approx(1.0, abs=1e-4)
    assert not np.array_equal(subset_masks(seed=3), subset_masks(seed=4))


def test_masks_and_cell_sums():
    masks = subset_masks(grid=9, samples=1000, subset=0.2, seed=0)
    assert masks.shape == (1000, 9, 9) and (masks.sum(axis=(1, 2)) == 16).all()  # |S| = round(0.2 * 81) cells
    assert abs(masks.mean(axis=0) - 16 / 81).max() < 0.06  # every cell equally likely
    big = upsample(np.array([[True, False], [False, True]]), (4, 5))
    np.testing.assert_array_equal(big[:, :3], [[1, 1, 1], [1, 1, 1], [0, 0, 0], [0, 0, 0]])
    np.testing.assert_allclose(cell_sums(np.arange(16.0).reshape(4, 4), 2), [[10, 18], [42, 50]])


def test_a_random_map_is_not_rewarded_for_the_size_of_the_subsets(handle_of, rng):
    m = sum_model(handle_of)
    picture = rng.integers(1, 256, (18, 18), dtype=np.uint8)
    noise = np.random.default_rng(1).random((18, 18))
    assert abs(mufidelity(m, picture, noise, target=0, samples=200)) < 0.3


def test_a_constant_map_scores_zero(handle_of, rng):
    m = sum_model(handle_of)
    picture = rng.integers(1, 256, (18, 18), dtype=np.uint8)
    assert mufidelity(m, picture, np.zeros((18, 18)), target=0, samples=16) == 0.0


def test_average_drop_and_increase_by_hand():
    assert confidence_change(0.8, 0.6).drop == pytest.approx(25.0)
    assert confidence_change(0.8, 0.6).increase == 0.0
    c = confidence_change(0.5, 0.7)
    assert (c.drop, c.increase) == (0.0, 100.0)
    np.testing.assert_allclose(normalised_map(np.array([[-2.0, 1.0], [2.0, 0.0]])), [[0, 0.5], [1, 0]])


def test_average_drop_on_a_linear_model(handle_of):
    # logits (z0, z1) = (0, sum(x)): the map 1 over the left half keeps exactly that half.
    model = keras.Sequential([keras.Input((2, 2, 1)), keras.layers.Flatten(), keras.layers.Dense(2, use_bias=False)])
    model.layers[-1].set_weights([np.stack([np.zeros(4), np.ones(4)], axis=1).astype(np.float32)])
    m = handle_of(model)
    picture = np.full((2, 2), 255, np.uint8)
    c = average_drop(m, picture, np.array([[1.0, 0.0], [1.0, 0.0]]), target=1)
    y, o = 1 / (1 + np.exp(-4.0)), 1 / (1 + np.exp(-2.0))
    assert (c.original, c.masked) == (pytest.approx(y, abs=1e-6), pytest.approx(o, abs=1e-6))
    assert c.drop == pytest.approx((y - o) / y * 100, abs=1e-4) and c.increase == 0.0


def test_baselines(rng):
    picture = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    a, b = baseline_map("random", picture, seed=1), baseline_map("random", picture, seed=1)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (10, 12) and not np.array_equal(a, baseline_map("random", picture, seed=2))
    np.testing.assert_allclose(baseline_map("edge", picture), sobel(picture.mean(axis=-1) / 255.0), atol=1e-6)
    with pytest.raises(ValueError, match="baseline"):
        baseline_map("noise", picture)
