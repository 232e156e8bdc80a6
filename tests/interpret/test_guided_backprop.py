"""Guided backprop: hand-computed values, an independent oracle, nesting, and the user's model left alone."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from interpret import explain
from interpret.gradients import input_gradients
from interpret.guided_backprop import guided_gradients, guided_identity, is_relu_like
from models.handle import ModelHandle
from models.preprocessing import PRESETS


def handle(model: keras.Model, name: str = "tiny") -> ModelHandle:
    return ModelHandle(name, model, PRESETS["0..1"], [])


def conv_stack(channels: int = 3, head: str = "softmax", classes: int = 3, seed: int = 0) -> keras.Sequential:
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((12, 12, channels)),
            keras.layers.Conv2D(6, 3, activation="relu"),
            keras.layers.DepthwiseConv2D(3, activation="relu6"),
            keras.layers.SeparableConv2D(5, 3, activation="relu"),
            keras.layers.Conv2D(4, 1),
            keras.layers.ReLU(max_value=6.0),
            keras.layers.Flatten(),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(6),
            keras.layers.Activation("relu"),
            keras.layers.Dense(1 if head == "sigmoid" else classes, activation=head),
        ]
    )


def test_relu_like_layers_are_recognised():
    relu_like = [
        keras.layers.Conv2D(2, 3, activation="relu"),
        keras.layers.Conv2D(2, 3, activation="relu6"),
        keras.layers.Dense(2, activation="relu"),
        keras.layers.DepthwiseConv2D(3, activation="relu"),
        keras.layers.SeparableConv2D(2, 3, activation="relu6"),
        keras.layers.ReLU(),
        keras.layers.ReLU(max_value=6.0),
        keras.layers.Activation("relu"),
        keras.layers.Activation("relu6"),
    ]
    others = [
        keras.layers.Conv2D(2, 3),
        keras.layers.Dense(2, activation="softmax"),
        keras.layers.Activation("sigmoid"),
        keras.layers.Activation("tanh"),
        keras.layers.MaxPooling2D(),
        keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="relu")]),
    ]
    assert all(is_relu_like(layer) for layer in relu_like)
    assert not any(is_relu_like(layer) for layer in others)


def test_guided_identity_passes_only_positive_gradients():
    x = tf.constant([1.0, -2.0, 3.0, 0.5])
    w = tf.constant([2.0, 3.0, -1.0, -4.0])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = guided_identity(x)
        s = tf.reduce_sum(w * y)
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    np.testing.assert_array_equal(tape.gradient(s, x).numpy(), [2.0, 3.0, 0.0, 0.0])


def test_one_conv_model_by_hand():
    # x (1, 2, 1) -> 1x1 conv with 2 filters, fused ReLU -> Flatten -> Dense(2, softmax).
    model = keras.Sequential(
        [
            keras.Input((1, 2, 1)),
            keras.layers.Conv2D(2, 1, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(2, activation="softmax", use_bias=False),
        ]
    )
    model.layers[0].set_weights([np.array([1.0, -2.0]).reshape(1, 1, 1, 2), np.array([0.0, 0.5])])
    v = np.array([[2.0, -1.0], [-1.0, 1.0], [3.0, 1.0], [-4.0, 2.0]])  # rows: (pixel 0, f0), (0, f1), (1, f0), (1, f1)
    model.layers[2].set_weights([v])
    m = handle(model)
    x = np.array([0.5, -1.0], np.float32).reshape(1, 1, 2, 1)
    # pre-activations: pixel 0 -> (0.5, -0.5), pixel 1 -> (-1, 2.5); open ReLUs: (f0 at pixel 0), (f1 at pixel 1)
    # target 0: plain = (1*2, -2*-4) = (2, 8); guided drops the negative -4 at pixel 1 -> (2, 0)
    # target 1: plain = (1*-1, -2*2) = (-1, -4); guided drops the negative -1 at pixel 0 -> (0, -4)
    for target, plain, guided in [(0, [2.0, 8.0], [2.0, 0.0]), (1, [-1.0, -4.0], [0.0, -4.0])]:
        np.testing.assert_allclose(input_gradients(m, x, target)[0].ravel(), plain, atol=1e-6)
        np.testing.assert_allclose(guided_gradients(m, x, target)[0].ravel(), guided, atol=1e-6)


def test_relu6_layer_fused_relu_and_activation_relu_by_hand():
    w1 = np.array([[1.0, 2.0, -1.0], [0.5, 0.0, 1.0]])
    rng = np.random.default_rng(3)
    w2, w3, w4 = rng.normal(size=(3, 3)), rng.normal(size=(3, 3)), rng.normal(size=(3, 2))
    model = keras.Sequential(
        [
            keras.Input((1, 2, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(3, use_bias=False),
            keras.layers.ReLU(max_value=6.0),
            keras.layers.Dense(3, activation="relu", use_bias=False),
            keras.layers.Dense(3, use_bias=False),
            keras.layers.Activation("relu"),
            keras.layers.Dense(2, use_bias=False),
        ]
    )
    for layer, w in zip(
        [model.layers[1], model.layers[3], model.layers[4], model.layers[6]], [w1, w2, w3, w4], strict=True
    ):
        layer.set_weights([w])
    x = np.array([4.0, 3.0])
    z1 = x @ w1  # (5.5, 8, -1): the second unit is saturated by ReLU6, the third is off
    np.testing.assert_allclose(z1, [5.5, 8.0, -1.0])
    y1 = np.clip(z1, 0, 6)
    z2 = y1 @ w2
    z3 = np.maximum(z2, 0) @ w3
    m = handle(model)
    for target in (0, 1):
        r = w4[:, target]
        open1 = (z1 > 0) & (z1 < 6)
        plain = w1 @ (open1 * (w2 @ ((z2 > 0) * (w3 @ ((z3 > 0) * r)))))
        g3 = (z3 > 0) * np.maximum(r, 0)
        g2 = (z2 > 0) * np.maximum(w3 @ g3, 0)
        guided = w1 @ (open1 * np.maximum(w2 @ g2, 0))
        assert not np.allclose(plain, guided)
        got_plain = input_gradients(m, x.reshape(1, 1, 2, 1).astype(np.float32), target)[0].ravel()
        got_guided = guided_gradients(m, x.reshape(1, 1, 2, 1).astype(np.float32), target)[0].ravel()
        np.testing.assert_allclose(got_plain, plain, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got_guided, guided, rtol=1e-5, atol=1e-6)


def _oracle_guided(model: keras.Sequential, x: np.ndarray, target: int) -> np.ndarray:
    """Guided backprop written out independently: linear twins + explicit guided (clipped) ReLUs."""

    def guided_relu(z, max_value):
        @tf.custom_gradient
        def f(z):
            y = tf.clip_by_value(z, 0.0, max_value) if max_value else tf.nn.relu(z)
            upper = (z < max_value) if max_value else tf.ones_like(z, bool)

            def grad(dy):
                keep = tf.cast((z > 0) & upper & (dy > 0), dy.dtype)
                return dy * keep

            return y, grad

        return f(z)

    steps = []
    for layer in model.layers[:-1]:
        act = getattr(getattr(layer, "activation", None), "__name__", None)
        if isinstance(layer, keras.layers.ReLU):
            steps.append(lambda h, mv=layer.max_value: guided_relu(h, float(mv) if mv else None))
        elif isinstance(layer, keras.layers.Activation) and act == "relu":
            steps.append(lambda h: guided_relu(h, None))
        elif act in ("relu", "relu6"):
            twin = layer.__class__.from_config({**layer.get_config(), "activation": "linear"})
            twin.build(tuple(layer.input.shape))
            twin.set_weights(layer.get_weights())
            steps.append(lambda h, t=twin, a=act: guided_relu(t(h), 6.0 if a == "relu6" else None))
        else:
            steps.append(layer)
    last = model.layers[-1]
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        h = xt
        for step in steps:
            h = step(h)
        logits = tf.matmul(h, last.kernel) + last.bias
        score = logits[:, target]
    return tape.gradient(score, xt).numpy()


def test_agrees_with_an_independent_oracle_on_fused_relu_relu6_layers():
    model = conv_stack()
    m = handle(model)
    x = np.random.default_rng(1).random((2, 12, 12, 3)).astype(np.float32)
    for target in range(3):
        got = guided_gradients(m, x, target)[0]
        want = _oracle_guided(model, x, target)
        assert np.abs(want).max() > 0
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6 * np.abs(want).max())


def test_differs_from_saliency_on_a_model_with_relus():
    m = handle(conv_stack())
    picture = (np.random.default_rng(2).random((12, 12, 3)) * 255).astype(np.uint8)
    guided = explain(m, picture, method="guided_backprop")
    plain = explain(m, picture, method="saliency")
    assert not np.allclose(guided.heatmap, plain.heatmap, rtol=0.05, atol=0)
    assert not np.allclose(guided.extras["gradients"], input_gradients(m, m.prepare(picture), guided.target)[0][0])


def test_equals_the_plain_gradient_without_any_relu():
    keras.utils.set_random_seed(4)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, activation="tanh"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    m = handle(model)
    x = np.random.default_rng(0).random((1, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(guided_gradients(m, x, 1)[0], input_gradients(m, x, 1)[0], rtol=1e-6, atol=1e-9)


def test_reaches_relus_inside_a_nested_base():
    keras.utils.set_random_seed(5)
    inp = keras.Input((10, 10, 3))
    layers = [
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.DepthwiseConv2D(3, activation="relu6"),
        keras.layers.Conv2D(4, 1),
        keras.layers.ReLU(max_value=6.0),
    ]
    h = inp
    for layer in layers:
        h = layer(h)
    base = keras.Model(inp, h, name="base")
    gap, dense = keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, activation="softmax")
    nested = keras.Sequential([keras.Input((10, 10, 3)), base, gap, dense])
    flat_in = keras.Input((10, 10, 3))
    h = flat_in
    for layer in layers:
        h = layer(h)
    flat = keras.Model(flat_in, dense(gap(h)))
    x = np.random.default_rng(0).random((1, 10, 10, 3)).astype(np.float32)
    g_nested = guided_gradients(handle(nested, "nested"), x, 2)[0]
    g_flat = guided_gradients(handle(flat, "flat"), x, 2)[0]
    np.testing.assert_allclose(g_nested, g_flat, rtol=1e-5, atol=1e-8)
    assert not np.allclose(g_nested, input_gradients(handle(nested, "n2"), x, 2)[0], rtol=0.05, atol=0)


def test_user_model_is_not_modified():
    model = conv_stack()
    m = handle(model)
    picture = (np.random.default_rng(6).random((12, 12, 3)) * 255).astype(np.uint8)
    weights = [w.copy() for w in model.get_weights()]
    activations = [(layer, getattr(layer, "activation", None)) for layer in model.layers]
    layer_ids = [id(layer) for layer in model.layers]
    probs = model.predict(m.prepare(picture), verbose=0)
    saliency_before = explain(m, picture, method="saliency").heatmap
    explain(m, picture, method="guided_backprop")
    explain(m, picture, method="guided_gradcam")
    assert [id(layer) for layer in model.layers] == layer_ids
    assert all(getattr(layer, "activation", None) is act for layer, act in activations)
    for before, after in zip(weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
    np.testing.assert_array_equal(model.predict(m.prepare(picture), verbose=0), probs)
    np.testing.assert_array_equal(explain(m, picture, method="saliency").heatmap, saliency_before)


def test_compiled_once_per_handle():
    m = handle(conv_stack())
    rng = np.random.default_rng(7)
    for _ in range(3):
        explain(
            m, (rng.random((12, 12, 3)) * 255).astype(np.uint8), method="guided_backprop", target=int(rng.integers(3))
        )
    fn = m.cached(("input_grad", "guided_backprop"), lambda: None)
    assert fn.experimental_get_tracing_count() == 1


@pytest.mark.parametrize("channels", [3, 1])
def test_binary_sigmoid_classes_differ_not_only_in_sign(channels):
    """Logits -z/2, z/2: plain gradients of the two classes are opposite; the ReLU guidance breaks that symmetry."""
    m = handle(conv_stack(channels, "sigmoid"))
    x = m.prepare((np.random.default_rng(8).random((20, 16, channels)) * 255).astype(np.uint8))
    g0, g1 = guided_gradients(m, x, 0)[0], guided_gradients(m, x, 1)[0]
    assert np.abs(g0).max() > 0 and np.abs(g1).max() > 0
    assert not np.allclose(g0, -g1)
