"""SmoothGrad: noise, the combining maths, a linear model by hand, and tf-keras-vis fed the same noise."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from interpret import explain
from interpret.gradients import input_gradients
from interpret.smoothgrad import (
    combine,
    input_range,
    noise_batches,
    noise_sigma,
    smoothgrad_map,
    smoothgrad_sums,
)
from models.handle import ModelHandle
from models.preprocessing import PRESETS


def handle(model: keras.Model, preset: str = "0..1") -> ModelHandle:
    return ModelHandle("tiny", model, PRESETS[preset], [])


def conv_model(channels: int = 3, head: str | None = None, classes: int = 3, seed: int = 0) -> keras.Sequential:
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((16, 16, channels)),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(1 if head == "sigmoid" else classes, activation=head),
        ]
    )


def normalise(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float64)
    return (a - a.min()) / (a.max() - a.min())


def test_noise_is_seeded_and_batching_does_not_change_the_stream():
    shape = (4, 5, 3)
    whole = np.concatenate(list(noise_batches(7, 50, shape, 0.3, batch_size=50)))
    pieces = list(noise_batches(7, 50, shape, 0.3, batch_size=16))
    assert [len(p) for p in pieces] == [16, 16, 16, 2]
    np.testing.assert_array_equal(np.concatenate(pieces), whole)
    assert whole.dtype == np.float32 and whole.shape == (50, *shape)
    assert abs(whole.std() - 0.3) < 0.02 and abs(whole.mean()) < 0.02
    other = np.concatenate(list(noise_batches(8, 50, shape, 0.3, batch_size=50)))
    assert not np.allclose(whole, other)


@pytest.mark.parametrize("preset,span", [("0..1", 1.0), ("-1..1", 2.0), ("0..255", 255.0)])
def test_noise_level_is_a_fraction_of_the_model_input_range(preset, span):
    m = handle(conv_model(), preset)
    assert input_range(m) == pytest.approx(span)
    assert noise_sigma(0.15, input_range(m)) == pytest.approx(0.15 * span)


def test_combine_by_hand():
    g1, g2 = np.array([1.0, -3.0]), np.array([3.0, 1.0])
    sums = np.stack([np.abs(g1) + np.abs(g2), g1**2 + g2**2, g1 + g2])
    np.testing.assert_allclose(combine(sums, 2, "abs"), [2.0, 2.0])
    np.testing.assert_allclose(combine(sums, 2, "squared"), [5.0, 5.0])
    np.testing.assert_allclose(combine(sums, 2, "plain"), [2.0, 1.0])
    with pytest.raises(ValueError, match="magnitude"):
        combine(sums, 2, "median")
    np.testing.assert_array_equal(smoothgrad_map(np.array([[[1.0, 4.0, 2.0]]])), [[4.0]])


def test_linear_model_gives_the_weights_whatever_the_noise():
    # logit_t = sum_i w_it x_i: every noisy gradient is exactly w_t, so SmoothGrad = max_c |w_t|.
    model = keras.Sequential([keras.Input((2, 2, 3)), keras.layers.Flatten(), keras.layers.Dense(2)])
    w = np.arange(24, dtype=np.float32).reshape(12, 2) - 11.0
    model.layers[1].set_weights([w, np.zeros(2, np.float32)])
    m = handle(model)
    x = np.full((1, 2, 2, 3), 0.5, np.float32)
    noise = np.random.default_rng(0).normal(0, 0.5, (9, 2, 2, 3)).astype(np.float32)
    sums, count = smoothgrad_sums(m, x, 1, [noise[:4], noise[4:]])
    assert count == 9
    want = np.abs(w[:, 1]).reshape(2, 2, 3).max(axis=-1)  # e.g. pixel (0,0): |(-10, -8, -6)| -> 10
    np.testing.assert_allclose(smoothgrad_map(combine(sums, count, "abs")), want, rtol=1e-6)
    assert want[0, 0] == 10.0
    e = explain(m, np.full((2, 2, 3), 128, np.uint8), method="smoothgrad", samples=5, noise_level=0.3, seed=3)
    np.testing.assert_allclose(e.heatmap, want, rtol=1e-6)


def test_zero_noise_is_plain_saliency_and_batches_do_not_matter():
    m = handle(conv_model())
    x = np.random.default_rng(1).random((1, 16, 16, 3)).astype(np.float32)
    sums, count = smoothgrad_sums(m, x, 2, np.zeros((3, 16, 16, 3), np.float32))
    grads = input_gradients(m, x, 2)[0][0]
    np.testing.assert_allclose(combine(sums, count, "abs"), np.abs(grads), rtol=1e-4, atol=1e-4 * np.abs(grads).max())
    np.testing.assert_allclose(combine(sums, count, "plain"), np.abs(grads), rtol=1e-4, atol=1e-4 * np.abs(grads).max())
    noise = np.random.default_rng(2).normal(0, 0.2, (10, 16, 16, 3)).astype(np.float32)
    one, _ = smoothgrad_sums(m, x, 2, noise)
    many, _ = smoothgrad_sums(m, x, 2, [noise[:3], noise[3:7], noise[7:]])
    np.testing.assert_allclose(one, many, rtol=1e-4, atol=1e-4 * np.abs(one).max())


def test_agrees_with_tf_keras_vis_fed_the_same_noise():
    from tf_keras_vis.saliency import Saliency
    from tf_keras_vis.utils.scores import CategoricalScore

    model = conv_model(classes=4)  # linear logits: nothing to replace
    m = handle(model)
    x = np.random.default_rng(3).random((1, 16, 16, 3)).astype(np.float32)
    samples, level, seed = 12, 0.2, 11
    for target in (0, 3):
        # tf-keras-vis draws np.random.normal(0, sigma, (samples, 1, H, W, C)) with
        # sigma = level * (max(x) - min(x)); seeding NumPy's global generator fixes it.
        np.random.seed(seed)
        reference = Saliency(model, clone=False)(
            CategoricalScore([target]), x, smooth_samples=samples, smooth_noise=level
        )
        np.random.seed(seed)
        noise = np.random.standard_normal((samples, 1, 16, 16, 3))[:, 0] * level * (x.max() - x.min())
        sums, count = smoothgrad_sums(m, x, target, noise.astype(np.float32))
        ours = smoothgrad_map(combine(sums, count, "abs"))
        corr = np.corrcoef(normalise(ours).ravel(), normalise(reference[0]).ravel())[0, 1]
        assert corr >= 0.99
        np.testing.assert_allclose(normalise(ours), reference[0], atol=1e-4)


def test_seed_reproducible_and_noise_matters():
    m = handle(conv_model())
    picture = (np.random.default_rng(4).random((16, 16, 3)) * 255).astype(np.uint8)
    a = explain(m, picture, method="smoothgrad", samples=6, seed=1)
    b = explain(m, picture, method="smoothgrad", samples=6, seed=1)
    c = explain(m, picture, method="smoothgrad", samples=6, seed=2)
    np.testing.assert_array_equal(a.heatmap, b.heatmap)
    assert not np.allclose(a.heatmap, c.heatmap)
    plain = explain(m, picture, method="saliency")
    assert not np.allclose(a.heatmap, plain.heatmap, rtol=0.05)
    squared = explain(m, picture, method="smoothgrad", samples=6, seed=1, magnitude="squared")
    assert not np.allclose(a.heatmap, squared.heatmap)


def test_caps_and_one_compiled_function():
    m = handle(conv_model())
    picture = (np.random.default_rng(5).random((16, 16, 3)) * 255).astype(np.uint8)
    with pytest.raises(ValueError, match="samples"):
        explain(m, picture, method="smoothgrad", samples=257)
    with pytest.raises(ValueError, match="noise_level"):
        explain(m, picture, method="smoothgrad", noise_level=-0.1)
    for n in (3, 40, 7):  # several batch lengths, one trace (the batch axis is dynamic)
        explain(m, picture, method="smoothgrad", samples=n)
    assert m.cached(("smoothgrad_sums",), lambda: None).experimental_get_tracing_count() == 1
