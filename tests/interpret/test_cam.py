"""CAM: a hand-computed map, the CAM = Grad-CAM identity, nesting, binary heads and refusals."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from interpret import explain
from interpret.cam import CAMNotApplicable, cam, cam_map, cam_structure, cam_weights, feature_layer
from interpret.gradcam import gradcam, gradcam_weights, weighted_map
from interpret.gradients import layer_gradients
from models.handle import ModelHandle
from models.preprocessing import PRESETS


def handle(model: keras.Model) -> ModelHandle:
    return ModelHandle("tiny", model, PRESETS["0..1"], [])


def gap_model(channels: int = 3, head: str = "softmax", classes: int = 3, seed: int = 0) -> keras.Sequential:
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((12, 12, channels)),
            keras.layers.Conv2D(6, 3, activation="relu"),
            keras.layers.Conv2D(5, 3, activation="relu", name="features"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(1 if head == "sigmoid" else classes, activation=head),
        ]
    )


def test_hand_computed_map():
    model = keras.Sequential(
        [
            keras.Input((2, 2, 1)),
            keras.layers.Conv2D(2, 1, name="conv"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    model.layers[0].set_weights([np.array([1.0, -1.0]).reshape(1, 1, 1, 2), np.array([0.0, 1.0])])
    model.layers[2].set_weights([np.array([[2.0, -1.0], [1.0, 3.0]]), np.array([0.5, 0.0])])
    m = handle(model)
    x = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32).reshape(1, 2, 2, 1)
    # A0 = x, A1 = 1 - x; CAM_0 = 2 A0 + 1 A1, CAM_1 = -1 A0 + 3 A1
    np.testing.assert_allclose(cam(m, x, 0).heatmap, [[2.0, 3.0], [4.0, 5.0]], rtol=1e-6)
    np.testing.assert_allclose(cam(m, x, 1).heatmap, [[-1.0, -5.0], [-9.0, -13.0]], rtol=1e-6)
    # the mean of the map plus the bias is the logit (4.0 and -7.0)
    np.testing.assert_allclose(m.logits(x, prepared=True)[0], [4.0, -7.0], rtol=1e-6)
    assert cam(m, x, 0).extras["layer"] == "conv"


def test_pure_functions():
    kernel = np.array([[2.0, -1.0], [1.0, 3.0]])
    np.testing.assert_array_equal(cam_weights(kernel, 1, "softmax"), [-1.0, 3.0])
    np.testing.assert_array_equal(cam_weights(np.array([[4.0], [-2.0]]), 1, "sigmoid"), [2.0, -1.0])
    np.testing.assert_array_equal(cam_weights(np.array([[4.0], [-2.0]]), 0, "sigmoid"), [-2.0, 1.0])
    acts = np.arange(8, dtype=np.float32).reshape(2, 2, 2)
    np.testing.assert_allclose(cam_map(acts, np.array([1.0, -1.0])), -np.ones((2, 2)))


def test_cam_equals_gradcam_up_to_scale():
    m = handle(gap_model())
    x = m.prepare((np.random.default_rng(0).random((12, 12, 3)) * 255).astype(np.uint8))
    for target in range(3):
        acts, grads, _ = layer_gradients(m, x, "features", target)
        h, w = acts.shape[1:3]
        signed = weighted_map(acts[0], gradcam_weights(grads[0]), relu=False)
        got = cam(m, x, target).heatmap
        assert np.abs(got).max() > 0
        np.testing.assert_allclose(got, h * w * signed, rtol=1e-4, atol=1e-6 * np.abs(got).max())
        # at the layer's resolution: ReLU(CAM) = h w * Grad-CAM
        np.testing.assert_allclose(
            np.maximum(got, 0), h * w * gradcam(m, x, target, layer="features").heatmap, rtol=1e-4, atol=1e-6
        )


def test_nested_base_with_gap_outside_or_inside():
    keras.utils.set_random_seed(1)
    inp = keras.Input((12, 12, 3))
    h = keras.layers.Conv2D(4, 3, activation="relu", name="c1")(inp)
    h = keras.layers.Conv2D(5, 3, activation="relu", name="c2")(h)
    base = keras.Model(inp, h, name="base")
    outer = keras.Sequential(
        [
            keras.Input((12, 12, 3)),
            base,
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    assert feature_layer(handle(outer)) == "base/c2"

    pooled = keras.Model(inp, keras.layers.GlobalAveragePooling2D(name="avg_pool")(h), name="pooled_base")
    top_in = keras.Input((12, 12, 3))
    y = keras.layers.Dropout(0.2)(pooled(top_in))
    functional = keras.Model(top_in, keras.layers.Dense(3, activation="softmax", name="head")(y))
    assert cam_structure(functional) == ("pooled_base/c2", "head")
    m = handle(functional)
    x = m.prepare((np.random.default_rng(2).random((12, 12, 3)) * 255).astype(np.uint8))
    acts, grads, _ = layer_gradients(m, x, "pooled_base/c2", 1)
    np.testing.assert_allclose(
        cam(m, x, 1).heatmap, 64 * weighted_map(acts[0], gradcam_weights(grads[0]), relu=False), rtol=1e-4, atol=1e-7
    )


def test_separate_softmax_activation_layer():
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, name="f"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, name="d"),
            keras.layers.Activation("softmax"),
        ]
    )
    assert cam_structure(model) == ("f", "d")
    e = explain(handle(model), (np.random.default_rng(0).random((8, 8, 3)) * 255).astype(np.uint8), method="cam")
    assert np.isfinite(e.heatmap).all()


def test_binary_sigmoid_classes_are_opposite():
    m = handle(gap_model(head="sigmoid"))
    x = m.prepare((np.random.default_rng(4).random((12, 12, 3)) * 255).astype(np.uint8))
    c0, c1 = cam(m, x, 0).heatmap, cam(m, x, 1).heatmap
    np.testing.assert_allclose(c0, -c1, rtol=1e-6)
    bias = float(keras.ops.convert_to_numpy(m.model.layers[-1].bias)[0])
    logits = m.logits(x, prepared=True)[0]
    assert c1.mean() + bias / 2 == pytest.approx(logits[1], rel=1e-4, abs=1e-6)


@pytest.mark.parametrize(
    "layers",
    [
        [keras.layers.Conv2D(4, 3), keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")],
        [keras.layers.Conv2D(4, 3), keras.layers.GlobalMaxPooling2D(), keras.layers.Dense(3, activation="softmax")],
        [
            keras.layers.Conv2D(4, 3),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(3, activation="softmax"),
        ],
        [keras.layers.Conv2D(3, 3), keras.layers.GlobalAveragePooling2D()],
    ],
    ids=["flatten", "global-max", "two-dense", "no-dense"],
)
def test_other_models_get_a_clear_message(layers):
    m = handle(keras.Sequential([keras.Input((8, 8, 3)), *layers]))
    picture = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(CAMNotApplicable, match="Grad-CAM") as info:
        explain(m, picture, method="cam")
    assert isinstance(info.value, ValueError)
    explain(m, picture, method="gradcam")  # the suggested alternative works
