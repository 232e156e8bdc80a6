"""Activation maximisation: the optimised picture drives its target far above where it started."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from interpret.activations import layer_activations
from interpret.feature_visualization import affine_preprocessing, maximize_activation, total_variation
from models.handle import ModelHandle
from models.preprocessing import Preprocessing


def test_affine_probe_recovers_the_preprocessing(tiny, handle_of):
    m = handle_of(tiny.conv_softmax(), preprocessing="-1..1")
    a, b = affine_preprocessing(m)
    np.testing.assert_allclose(a, np.eye(3) / 127.5, atol=1e-7)
    np.testing.assert_allclose(b, [-1, -1, -1], atol=1e-6)
    bgr = Preprocessing("caffe", "BGR minus mean", keras.applications.vgg16.preprocess_input)
    a, b = affine_preprocessing(ModelHandle("v", tiny.conv_softmax(), bgr, []))
    np.testing.assert_allclose(a, np.eye(3)[::-1], atol=1e-6)  # RGB -> BGR swap
    np.testing.assert_allclose(b, [-103.939, -116.779, -123.68], atol=1e-3)
    squash = Preprocessing("sq", "not affine", lambda x: np.sqrt(x))
    assert affine_preprocessing(ModelHandle("s", tiny.conv_softmax(), squash, [])) is None


def test_total_variation_by_hand():
    u = np.zeros((1, 2, 3, 1), np.float32)
    u[0, :, 1] = 1.0  # a vertical stripe
    # dy: all zero; dx: |1-0|, |0-1| in every row -> mean 1
    assert float(total_variation(u)) == pytest.approx(1.0)


def best_of_random(m, layer, unit, n=200):
    """The highest target value over n random pictures: the bar a real optimiser must clear."""
    pictures = np.random.default_rng(9).integers(0, 256, (n, *m.input_shape), dtype=np.uint8)
    if layer is None:
        return float(m.logits(pictures)[:, unit].max())
    return float(layer_activations(m, pictures, layer)[..., unit].mean(axis=(1, 2)).max())


def test_channel_of_a_nested_layer_rises_far_above_the_start(tiny, handle_of):
    model, _, _ = tiny.nested_sequential()
    m = handle_of(model)
    vis = maximize_activation(m, layer="base/bn1", unit=2, steps=40, seed=1)
    assert vis.image.shape == (12, 12, 3) and vis.image.dtype == np.uint8
    assert len(vis.objective) == 40
    measured = layer_activations(m, vis.image, "base/bn1")[0, ..., 2].mean()
    assert measured == pytest.approx(vis.final, rel=0.05, abs=0.02)  # the 8-bit picture keeps it
    assert vis.final > vis.start
    assert vis.final > best_of_random(m, "base/bn1", 2)
    again = maximize_activation(m, layer="base/bn1", unit=2, steps=40, seed=1)
    np.testing.assert_array_equal(again.image, vis.image)  # seeded


def test_class_logit_rises_above_every_random_picture(tiny, handle_of):
    m = handle_of(tiny.conv_softmax(seed=3))
    start_top = int(np.argmax(m.predict(np.full((12, 12, 3), 128, np.uint8))[0]))
    target = (start_top + 1) % 3
    vis = maximize_activation(m, layer=None, unit=target, steps=60)
    assert vis.final > vis.start
    assert vis.final > best_of_random(m, None, target)


def test_bad_settings_are_refused(tiny, handle_of):
    m = handle_of(tiny.conv_softmax())
    with pytest.raises(ValueError, match="channels 0..4"):
        maximize_activation(m, layer="conv2", unit=5)
    with pytest.raises(ValueError, match="classes 0..2"):
        maximize_activation(m, unit=3)
    with pytest.raises(ValueError, match="steps"):
        maximize_activation(m, steps=0)


def test_agrees_with_tf_keras_vis_on_a_plain_model(tiny, handle_of):
    """Independent oracle: tf-keras-vis' ActivationMaximization also raises the same logit from grey."""
    from tf_keras_vis.activation_maximization import ActivationMaximization
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    model = tiny.conv_softmax(seed=4)
    m = handle_of(model, preprocessing="0..255")
    target = 1
    grey = np.full((1, 12, 12, 3), 128.0, np.float32)
    am = ActivationMaximization(model, model_modifier=ReplaceToLinear(), clone=True)
    theirs = am(CategoricalScore(target), seed_input=grey.copy(), steps=60, input_range=(0, 255))
    ours = maximize_activation(m, unit=target, steps=60)
    start = m.logits(grey, prepared=True)[0, target]
    their_logit = m.logits(np.asarray(theirs, np.float32), prepared=True)[0, target]
    our_logit = m.logits(ours.image.astype(np.float32)[None], prepared=True)[0, target]
    bar = best_of_random(m, None, target)
    assert their_logit > start and our_logit > start
    assert their_logit > bar
    assert our_logit > bar
