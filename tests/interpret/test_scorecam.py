"""Score-CAM: the pure maths, a hand-computed model, tf-keras-vis as an oracle, batching and progress."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from interpret import METHODS, explain
from interpret.scorecam import scorecam_map, scorecam_weights, select_channels, upsampled_masks


def test_select_channels_keeps_the_most_varied_maps():
    acts = np.zeros((3, 3, 4), np.float32)
    acts[..., 0] = 5.0  # large but flat: std 0
    acts[0, 0, 1] = 1.0  # small spread
    acts[:, :, 2] = np.arange(9).reshape(3, 3)  # largest spread
    acts[0, :, 3] = 2.0  # middle spread
    np.testing.assert_array_equal(select_channels(acts, 2), [2, 3])
    np.testing.assert_array_equal(select_channels(acts, 4), [0, 1, 2, 3])
    np.testing.assert_array_equal(select_channels(acts, 10), [0, 1, 2, 3])
    with pytest.raises(ValueError, match="at least 1"):
        select_channels(acts, 0)


def test_masks_are_min_max_normalised_and_flat_maps_give_zero():
    acts = np.stack([np.array([[1.0, 3.0], [5.0, 9.0]]), np.full((2, 2), 7.0)], axis=-1).astype(np.float32)
    masks = upsampled_masks(acts, (2, 2))
    np.testing.assert_allclose(masks[0], [[0.0, 0.25], [0.5, 1.0]], atol=1e-6)
    np.testing.assert_array_equal(masks[1], np.zeros((2, 2)))
    big = upsampled_masks(acts, (5, 7))
    assert big.shape == (2, 5, 7)
    assert big[0].min() == pytest.approx(0.0) and big[0].max() == pytest.approx(1.0, abs=1e-6)


def test_weights_softmax_over_channels_and_class_probability():
    logits = np.array([[1.0, 0.0], [3.0, 0.0]])
    e1, e3 = math.exp(1.0), math.exp(3.0)
    np.testing.assert_allclose(scorecam_weights(logits, 0), [e1 / (e1 + e3), e3 / (e1 + e3)], rtol=1e-6)
    sigmoid = [1 / (1 + math.exp(-1.0)), 1 / (1 + math.exp(-3.0))]
    np.testing.assert_allclose(scorecam_weights(logits, 0, "probability"), sigmoid, rtol=1e-6)
    with pytest.raises(ValueError, match="weighting"):
        scorecam_weights(logits, 0, "mean")


def test_map_is_relu_of_the_weighted_sum():
    acts = np.stack([np.array([[1.0, -2.0]]), np.array([[0.5, 0.5]])], axis=-1)
    np.testing.assert_allclose(scorecam_map(acts, np.array([2.0, 1.0])), [[2.5, 0.0]])


def two_pixel_handle(handle_of):
    """Input 1x2 gray; conv 1x1 with A0 = x and A1 = 1 - x; logit_0 = sum of A0 over pixels, logit_1 = 0."""
    model = keras.Sequential(
        [
            keras.Input((1, 2, 1)),
            keras.layers.Conv2D(2, 1, name="conv"),
            keras.layers.Flatten(name="flat"),
            keras.layers.Dense(2, name="dense"),
        ]
    )
    model.get_layer("conv").set_weights([np.array([[[[1.0, -1.0]]]], np.float32), np.array([0.0, 1.0], np.float32)])
    # flattened order: (pixel 0: A0, A1), (pixel 1: A0, A1)
    dense = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 0.0], [0.0, 0.0]], np.float32)
    model.get_layer("dense").set_weights([dense, np.zeros(2, np.float32)])
    return handle_of(model)


@pytest.mark.parametrize("weighting", ["softmax over channels", "probability"])
def test_hand_computed_two_pixel_model(handle_of, weighting):
    # x = [0.2, 0.6]: A0 = [0.2, 0.6] -> mask H0 = [0, 1]; A1 = [0.8, 0.4] -> mask H1 = [1, 0].
    # Masked inputs: x*H0 = [0, 0.6] -> logit_0 = 0.6; x*H1 = [0.2, 0] -> logit_0 = 0.2 (logit_1 = 0).
    m = two_pixel_handle(handle_of)
    picture = np.array([[51, 153]], np.uint8)
    e = explain(m, picture, "scorecam", target=0, layer="conv", weighting=weighting)
    if weighting == "softmax over channels":
        w0 = math.exp(0.6) / (math.exp(0.6) + math.exp(0.2))
        w1 = 1.0 - w0
    else:
        w0 = 1.0 / (1.0 + math.exp(-0.6))
        w1 = 1.0 / (1.0 + math.exp(-0.2))
    np.testing.assert_allclose(e.extras["masked_scores"], [0.6, 0.2], atol=1e-5)
    np.testing.assert_allclose(e.extras["weights"], [w0, w1], atol=1e-5)
    np.testing.assert_allclose(e.heatmap, [[0.2 * w0 + 0.8 * w1, 0.6 * w0 + 0.4 * w1]], atol=1e-5)


def tf_keras_vis_scorecam(model, x, target, layer, max_n=None):
    """tf-keras-vis's Score-CAM at the layer's own resolution (``expand_cam=False``), normalised to 0..1."""
    from tf_keras_vis.scorecam import Scorecam
    from tf_keras_vis.utils.scores import CategoricalScore

    cam = Scorecam(model, clone=True)
    return cam(CategoricalScore([target]), x, penultimate_layer=layer, max_N=max_n, expand_cam=False)[0]


@pytest.mark.parametrize(
    ("layer", "max_channels"),
    [("conv2", 64), ("conv2", 3), ("conv_same", 64), ("conv_same", 2)],
)
def test_agrees_with_tf_keras_vis(handle_of, correlation, rng, layer, max_channels):
    # tf-keras-vis weights each mask by the softmax probability of the model's *output*: give
    # it a model that outputs logits so that both compute p_c(x * H_k). Its max_N keeps the
    # channels with the largest spatial std, as max_channels does. The maps are compared at
    # the layer's resolution: the final upsampling for display (scipy zoom there, OpenCV
    # here) is not part of the method.
    keras.utils.set_random_seed(3)
    inp = keras.Input((12, 12, 3))
    h = keras.layers.Conv2D(4, 3, activation="relu", name="conv1")(inp)
    h = keras.layers.Conv2D(6, 3, activation="relu", name="conv2")(h)
    s = keras.layers.Conv2D(5, 3, padding="same", activation="relu", name="conv_same")(inp)
    h = keras.layers.Concatenate()([keras.layers.GlobalAveragePooling2D()(h), keras.layers.GlobalAveragePooling2D()(s)])
    model = keras.Model(inp, keras.layers.Dense(3, name="logits")(h))
    m = handle_of(model)
    x = m.prepare(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8))
    target = 1
    ours = METHODS["scorecam"].fn(m, x, target, layer=layer, max_channels=max_channels, weighting="probability")
    channels = 6 if layer == "conv2" else 5
    theirs = tf_keras_vis_scorecam(model, x, target, layer, None if max_channels >= channels else max_channels)
    assert ours.heatmap.shape == theirs.shape
    assert correlation(ours.heatmap, theirs) >= 0.99
    a = ours.heatmap - ours.heatmap.min()
    np.testing.assert_allclose(a / a.max(), theirs, atol=1e-3)


def test_max_channels_caps_the_masked_copies(tiny, handle_of, rng):
    m = handle_of(tiny.conv_softmax())
    picture = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    e = explain(m, picture, "scorecam", layer="conv2", max_channels=2)
    assert len(e.extras["channels"]) == len(e.extras["weights"]) == 2
    assert explain(m, picture, "scorecam", layer="conv2").extras["channels"].tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="max_channels"):
        explain(m, picture, "scorecam", max_channels=0)
    with pytest.raises(ValueError, match="max_channels"):
        explain(m, picture, "scorecam", max_channels=100_000)


def test_nested_layer_batches_and_progress(tiny, handle_of, rng):
    model, _base, _head = tiny.nested_sequential()
    m = handle_of(model)
    picture = rng.integers(0, 256, (20, 15, 3), dtype=np.uint8)
    seen: list[str] = []
    one = explain(m, picture, "scorecam", layer="base/conv2", batch_size=4, progress=lambda _f, msg: seen.append(msg))
    every = explain(m, picture, "scorecam", layer="base/conv2", batch_size=0)
    np.testing.assert_allclose(one.heatmap, every.heatmap, atol=1e-5)
    assert one.heatmap.shape == (20, 15)
    # 6 channels at 4 per batch: two batches announced
    assert sum(msg.startswith("Score-CAM masks") for msg in seen) >= 2
