"""Guided Grad-CAM: the product by hand, and the shared-forward function equals the two separate methods."""

from __future__ import annotations

import keras
import numpy as np

from interpret import explain
from interpret.gradcam import gradcam_weights, weighted_map
from interpret.gradients import input_gradients, layer_gradients
from interpret.guided_backprop import guided_gradients
from interpret.guided_gradcam import guided_and_layer_gradients, guided_gradcam, guided_gradcam_product
from models.handle import ModelHandle
from models.preprocessing import PRESETS


def handle(model: keras.Model, name: str = "tiny") -> ModelHandle:
    return ModelHandle(name, model, PRESETS["0..1"], [])


def conv_model(channels: int = 3, head: str = "softmax", classes: int = 3, seed: int = 0) -> keras.Sequential:
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((16, 16, channels)),
            keras.layers.Conv2D(6, 3, activation="relu"),
            keras.layers.Conv2D(6, 3, strides=2, activation="relu6", name="mid"),
            keras.layers.Conv2D(6, 3, name="last"),
            keras.layers.ReLU(name="last_relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(12, activation="relu"),  # ReLUs after the layer: guidance must not leak into Grad-CAM
            keras.layers.Dense(1 if head == "sigmoid" else classes, activation=head),
        ]
    )


def test_product_by_hand():
    guided = np.array([[[1.0, -2.0], [3.0, 0.5]], [[-1.0, 0.0], [2.0, 4.0]]])  # (2, 2, 2)
    cam = np.array([[2.0, 0.0], [1.0, 0.5]])
    np.testing.assert_allclose(
        guided_gradcam_product(guided, cam), [[[2.0, -4.0], [0.0, 0.0]], [[-1.0, 0.0], [1.0, 2.0]]]
    )
    # a 1x1 map upsamples to a constant
    np.testing.assert_allclose(guided_gradcam_product(guided, np.array([[3.0]])), 3.0 * guided)


def test_one_forward_pass_gives_plain_layer_gradients_and_guided_input_gradients():
    m = handle(conv_model())
    x = np.random.default_rng(0).random((1, 16, 16, 3)).astype(np.float32)
    for layer in ("mid", "last_relu"):
        for target in range(3):
            acts, layer_grads, guided, scores = guided_and_layer_gradients(m, x, layer, target)
            a_ref, g_ref, s_ref = layer_gradients(m, x, layer, target)
            guided_ref = guided_gradients(m, x, target)[0]
            np.testing.assert_allclose(acts, a_ref, rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(layer_grads, g_ref, rtol=1e-4, atol=1e-5 * np.abs(g_ref).max())
            np.testing.assert_allclose(guided, guided_ref, rtol=1e-4, atol=1e-5 * np.abs(guided_ref).max())
            np.testing.assert_allclose(scores, s_ref, rtol=1e-5)
            # and the guidance really acted on one and not the other
            assert not np.allclose(guided, input_gradients(m, x, target)[0], rtol=0.05, atol=0)


def test_method_is_guided_backprop_times_upsampled_gradcam():
    m = handle(conv_model())
    x = np.random.default_rng(1).random((1, 16, 16, 3)).astype(np.float32)
    acts, grads, _ = layer_gradients(m, x, "mid", 2)
    cam = weighted_map(acts[0], gradcam_weights(grads[0]))
    assert cam.shape == (6, 6) and cam.max() > 0
    want = guided_gradcam_product(guided_gradients(m, x, 2)[0][0], cam)
    result = guided_gradcam(m, x, 2, layer="mid")
    np.testing.assert_allclose(result.extras["gradients"], want, rtol=1e-4, atol=1e-5 * np.abs(want).max())
    np.testing.assert_allclose(result.heatmap, np.abs(want).max(-1), rtol=1e-4, atol=1e-5 * np.abs(want).max())
    np.testing.assert_allclose(result.extras["gradcam"], cam, rtol=1e-4, atol=1e-6)


def test_compiled_once_per_layer():
    m = handle(conv_model())
    rng = np.random.default_rng(2)
    for _ in range(3):
        explain(
            m, (rng.random((16, 16, 3)) * 255).astype(np.uint8), method="guided_gradcam", target=int(rng.integers(3))
        )
    fn = m.cached(("guided_gradcam", "last_relu"), lambda: None)
    assert fn.experimental_get_tracing_count() == 1


def test_nested_model():
    keras.utils.set_random_seed(3)
    inp = keras.Input((16, 16, 3))
    h = keras.layers.Conv2D(6, 3, activation="relu", name="c1")(inp)
    h = keras.layers.Conv2D(6, 3, activation="relu", name="c2")(h)
    base = keras.Model(inp, h, name="base")
    outer_in = keras.Input((16, 16, 3))
    y = keras.layers.GlobalAveragePooling2D()(base(outer_in))
    model = keras.Model(outer_in, keras.layers.Dense(3, activation="softmax")(y))
    m = handle(model)
    assert m.last_conv_layer == "base/c2"
    e = explain(m, (np.random.default_rng(4).random((16, 16, 3)) * 255).astype(np.uint8), method="guided_gradcam")
    assert e.layer == "base/c2" and np.isfinite(e.heatmap).all() and e.heatmap.max() > 0
