"""Saliency (Simonyan et al. 2014): |d logit / d x|, max over channels."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from interpret import explain
from interpret.saliency import saliency, saliency_map

L = keras.layers


def test_saliency_map_is_abs_max_over_channels():
    grads = np.array([[[1.0, -3.0, 2.0], [0.5, 0.25, -0.125]]])  # (1, 2, 3)
    np.testing.assert_array_equal(saliency_map(grads), [[3.0, 0.5]])


@pytest.mark.parametrize("activation", [None, "softmax"])
def test_linear_model_saliency_is_the_weight_column(tiny, handle_of, activation):
    """logit_t = sum_i w_it x_i + b_t, so d logit_t / d x = w_:,t and saliency = max_c |w|."""
    model = tiny.dense_head(input_shape=(5, 4, 3), classes=3, activation=activation)
    m = handle_of(model)
    w, _ = model.get_layer("dense").get_weights()  # (5*4*3, 3), Flatten order is (H, W, C)
    picture = (np.random.default_rng(1).random((5, 4, 3)) * 255).astype(np.uint8)
    for target in range(3):
        expected = np.abs(w[:, target].reshape(5, 4, 3)).max(axis=-1)
        e = explain(m, picture, method="saliency", target=target)
        assert e.heatmap.shape == (5, 4) and e.heatmap.dtype == np.float32
        np.testing.assert_allclose(e.heatmap, expected, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(e.extras["gradients"], w[:, target].reshape(5, 4, 3), rtol=1e-5, atol=1e-7)


def test_binary_sigmoid_saliency_is_half_the_weight(handle_of):
    """Two logits [-z/2, z/2]: d(z/2)/dx = w/2 for class 1, -w/2 for class 0 (same saliency)."""
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((3, 3, 1)), L.Flatten(), L.Dense(1, activation="sigmoid", name="dense")])
    m = handle_of(model, ["no", "yes"])
    w = model.get_layer("dense").get_weights()[0][:, 0].reshape(3, 3)
    picture = np.full((3, 3), 100, np.uint8)
    for target in (0, 1):
        e = explain(m, picture, method="saliency", target=target)
        np.testing.assert_allclose(e.heatmap, np.abs(w) / 2, rtol=1e-5)
    np.testing.assert_allclose(
        explain(m, picture, method="saliency", target=1).extras["gradients"][..., 0], w / 2, rtol=1e-5
    )


def test_saliency_agrees_with_tf_keras_vis(tiny, handle_of, correlation, rng):
    from tf_keras_vis.saliency import Saliency
    from tf_keras_vis.utils.scores import CategoricalScore

    model = tiny.conv_softmax(input_shape=(24, 20, 3), classes=4)
    m = handle_of(model)
    x = m.prepare((rng.random((24, 20, 3)) * 255).astype(np.uint8))
    oracle = Saliency(m.logits_model, clone=False)
    for target in range(4):
        ours = saliency(m, x, target).heatmap
        theirs = oracle(CategoricalScore([target]), x, normalize_map=True)[0]
        assert correlation(ours, theirs) >= 0.99
        np.testing.assert_allclose(
            (ours - ours.min()) / np.ptp(ours), theirs, atol=1e-3
        )  # tf-keras-vis adds an epsilon


def test_saliency_agrees_with_tf_keras_vis_on_the_trained_bundled_model(correlation):
    from pathlib import Path

    from tf_keras_vis.saliency import Saliency
    from tf_keras_vis.utils.scores import CategoricalScore

    from interpret.images import read_image
    from models import load

    m = load("fashion-mnist-cnn")
    x = m.prepare(read_image(Path(__file__).resolve().parents[2] / "assets" / "samples" / "fashion" / "3_dress_1.png"))
    oracle = Saliency(m.logits_model, clone=False)
    for target in (3, 0):
        ours = saliency(m, x, target).heatmap
        assert correlation(ours, oracle(CategoricalScore([target]), x)[0]) >= 0.99


def test_input_gradients_override_needs_a_cache_key(tiny, handle_of):
    from interpret.gradients import input_gradients

    m = handle_of(tiny.conv_softmax())
    with pytest.raises(ValueError, match="override_key"):
        input_gradients(m, np.zeros((1, 12, 12, 3), np.float32), 0, override=lambda path, layer: None)


def test_saliency_on_nested_model_equals_flat(tiny, handle_of, rng):
    model, base, (gap, dense) = tiny.nested_sequential()
    flat = keras.Model(base.inputs[0], dense(gap(base.outputs[0])))
    picture = (rng.random((12, 12, 3)) * 255).astype(np.uint8)
    a = explain(handle_of(model), picture, method="saliency", target=2)
    b = explain(handle_of(flat), picture, method="saliency", target=2)
    assert np.abs(a.heatmap).max() > 0
    np.testing.assert_allclose(a.heatmap, b.heatmap, rtol=1e-5, atol=1e-7)
