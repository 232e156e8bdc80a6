"""Integrated Gradients: midpoint rule by hand, completeness, baselines, batching, model kinds."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from interpret import explain
from interpret.integrated_gradients import (
    attribution_map,
    attributions,
    blurred,
    integrated_gradients,
    make_baseline,
    midpoint_alphas,
    path_gradients,
)
from models.handle import ModelHandle
from models.preprocessing import PRESETS


def handle(model: keras.Model, preset: str = "0..1") -> ModelHandle:
    return ModelHandle("tiny", model, PRESETS[preset], [])


def smooth_model(channels: int = 3, head: str | None = "softmax", classes: int = 3, seed: int = 0) -> keras.Sequential:
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((10, 10, channels)),
            keras.layers.Conv2D(6, 3, activation="tanh"),
            keras.layers.Conv2D(6, 3, activation="softplus"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(8, activation="tanh"),
            keras.layers.Dense(1 if head == "sigmoid" else classes, activation=head),
        ]
    )


def test_midpoint_alphas():
    np.testing.assert_allclose(midpoint_alphas(4), [0.125, 0.375, 0.625, 0.875])
    np.testing.assert_allclose(midpoint_alphas(1), [0.5])
    with pytest.raises(ValueError):
        midpoint_alphas(0)


def test_exponential_unit_by_hand():
    # One pixel, logits exp(w x): IG from x'=0 to x=1 with 2 midpoints is (e^0.25 + e^0.75) / 2 = (1.2840254 + 2.1170000) / 2 = 1.7005127
    # and tends to e - 1 = 1.718281... (completeness) as steps grow.
    model = keras.Sequential(
        [
            keras.Input((1, 1, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(2, activation="exponential", use_bias=False),
        ]
    )
    model.layers[1].set_weights([np.array([[1.0, -1.0]], np.float32)])
    m = handle(model)
    x = np.ones((1, 1, 1, 1), np.float32)
    two = integrated_gradients(m, x, 0, steps=2, baseline="zero")
    assert two.heatmap[0, 0] == pytest.approx((math.exp(0.25) + math.exp(0.75)) / 2, rel=1e-6)
    assert two.heatmap[0, 0] == pytest.approx(1.7005127, rel=1e-6)
    many = integrated_gradients(m, x, 0, steps=256, baseline="zero")
    assert many.heatmap[0, 0] == pytest.approx(math.e - 1, rel=1e-5)
    assert many.extras["score_difference"] == pytest.approx(math.e - 1, rel=1e-6)
    assert abs(many.extras["completeness_gap"]) < 1e-5


def test_linear_model_is_exact_with_one_step():
    model = keras.Sequential([keras.Input((2, 2, 3)), keras.layers.Flatten(), keras.layers.Dense(2)])
    w = np.linspace(-1, 1, 24, dtype=np.float32).reshape(12, 2)
    model.layers[1].set_weights([w, np.array([0.3, -0.2], np.float32)])
    m = handle(model, "-1..1")
    x = np.random.default_rng(0).uniform(-1, 1, (1, 2, 2, 3)).astype(np.float32)
    r = integrated_gradients(m, x, 1, steps=1, baseline="black")
    want = (x[0] - (-1.0)) * w[:, 1].reshape(2, 2, 3)  # black picture = -1 under the -1..1 preset
    np.testing.assert_allclose(r.extras["attributions"], want, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(r.heatmap, want.sum(-1), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("baseline", ["black", "zero", "blurred"])
def test_completeness_on_a_smooth_model(baseline):
    m = handle(smooth_model())
    x = np.random.default_rng(1).random((1, 10, 10, 3)).astype(np.float32)
    r = integrated_gradients(m, x, 2, steps=128, baseline=baseline)
    base = make_baseline(m, x[0], baseline)
    logits = m.logits(np.stack([x[0], base]), prepared=True)[:, 2]
    delta = logits[0] - logits[1]
    assert abs(delta) > 1e-3  # a real difference to explain
    assert r.extras["attributions"].sum() == pytest.approx(delta, rel=1e-3, abs=1e-6)
    assert r.heatmap.sum() == pytest.approx(delta, rel=1e-3, abs=1e-6)
    assert abs(r.extras["completeness_gap"]) < 1e-3 * abs(delta) + 1e-6
    coarse = integrated_gradients(m, x, 2, steps=2, baseline=baseline)
    assert abs(coarse.extras["completeness_gap"]) >= abs(r.extras["completeness_gap"])


def test_baselines():
    m = handle(smooth_model(), "-1..1")
    x = np.random.default_rng(2).uniform(-1, 1, (10, 10, 3)).astype(np.float32)
    np.testing.assert_array_equal(make_baseline(m, x, "black"), np.full_like(x, -1.0))
    np.testing.assert_array_equal(make_baseline(m, x, "zero"), np.zeros_like(x))
    soft = make_baseline(m, x, "blurred")
    assert soft.shape == x.shape and soft.std() < 0.5 * x.std()
    np.testing.assert_allclose(blurred(np.full((10, 10, 3), 0.25, np.float32)), 0.25, rtol=1e-6)
    gray = np.random.default_rng(3).random((10, 10, 1)).astype(np.float32)
    assert blurred(gray).shape == (10, 10, 1)
    with pytest.raises(ValueError, match="baseline"):
        make_baseline(m, x, "white")


def test_attribution_maths():
    x = np.array([[[1.0, 2.0]]])
    base = np.array([[[0.5, 4.0]]])
    grads = np.array([[[2.0, 3.0]]])
    np.testing.assert_allclose(attributions(x, base, grads), [[[1.0, -6.0]]])
    np.testing.assert_allclose(attribution_map(attributions(x, base, grads)), [[-5.0]])


def test_batching_does_not_change_the_result_and_one_trace():
    m = handle(smooth_model())
    x = np.random.default_rng(4).random((10, 10, 3)).astype(np.float32)
    base = np.zeros_like(x)
    alphas = midpoint_alphas(20)
    one = path_gradients(m, x, base, 1, alphas, batch_size=64)
    many = path_gradients(m, x, base, 1, alphas, batch_size=6)
    np.testing.assert_allclose(one, many, rtol=1e-4, atol=1e-4 * np.abs(one).max())
    assert m.cached(("ig_path_sum",), lambda: None).experimental_get_tracing_count() == 1


def test_signed_and_capped():
    from interpret import METHODS

    assert METHODS["integrated_gradients"].signed
    m = handle(smooth_model())
    picture = (np.random.default_rng(5).random((10, 10, 3)) * 255).astype(np.uint8)
    with pytest.raises(ValueError, match="steps"):
        explain(m, picture, method="integrated_gradients", steps=513)
    e = explain(m, picture, method="integrated_gradients", steps=16)
    assert e.heatmap.min() < 0 < e.heatmap.max()


@pytest.mark.parametrize("channels", [3, 1])
def test_binary_sigmoid_attributions_are_opposite_and_complete(channels):
    """Logits -z/2, z/2: the two classes' attributions are exact opposites, and each adds up to its score change."""
    m = handle(smooth_model(channels, "sigmoid"))
    picture = (np.random.default_rng(6).random((14, 12, channels)) * 255).astype(np.uint8)
    e = explain(m, picture, method="integrated_gradients", steps=64, target=0)
    other = explain(m, picture, method="integrated_gradients", steps=64, target=1)
    assert np.abs(e.heatmap).max() > 0
    for x in (e, other):
        assert abs(x.extras["completeness_gap"]) < 1e-2 * abs(x.extras["score_difference"]) + 1e-6
    np.testing.assert_allclose(other.extras["attributions"], -e.extras["attributions"], rtol=1e-5, atol=1e-9)
