"""graph.run: re-executing a model layer by layer, nested sub-models included, with taps and overrides."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from models import graph

L = keras.layers


def sub_output(model: keras.Model, layer_name: str, x: np.ndarray) -> np.ndarray:
    """Output of ``layer_name`` computed by a directly built Keras sub-model (no walker)."""
    return np.asarray(keras.Model(model.inputs[0], model.get_layer(layer_name).output)(x, training=False))


@pytest.fixture
def x(rng):
    return rng.random((2, 12, 12, 3), dtype=np.float32)


def test_run_on_sequential_matches_predict_and_taps(tiny, x):
    model = tiny.conv_sequential()
    out, tapped = graph.run(model, tf.constant(x), taps=("conv1", "gap"))
    np.testing.assert_allclose(out, model.predict(x, verbose=0), atol=1e-6)
    np.testing.assert_allclose(tapped["conv1"], sub_output(model, "conv1", x), atol=1e-6)
    np.testing.assert_allclose(tapped["gap"], sub_output(model, "gap", x), atol=1e-6)


def test_run_on_functional_matches_predict_and_taps(tiny, x):
    model = tiny.conv_softmax()
    out, tapped = graph.run(model, tf.constant(x), taps=("conv2",))
    np.testing.assert_allclose(out, model.predict(x, verbose=0), atol=1e-6)
    np.testing.assert_allclose(tapped["conv2"], sub_output(model, "conv2", x), atol=1e-6)


def test_functional_inside_sequential(tiny, x):
    model, base, (gap, _) = tiny.nested_sequential()
    out, tapped = graph.run(model, tf.constant(x), taps=("base/conv1", "base/bn1", "base", "gap"))
    np.testing.assert_allclose(out, model.predict(x, verbose=0), atol=1e-6)
    np.testing.assert_allclose(tapped["base/conv1"], sub_output(base, "conv1", x), atol=1e-5)
    np.testing.assert_allclose(tapped["base/bn1"], sub_output(base, "bn1", x), atol=1e-5)
    np.testing.assert_allclose(tapped["base"], base(x, training=False), atol=1e-5)
    np.testing.assert_allclose(tapped["gap"], gap(base(x, training=False)), atol=1e-5)


def test_sequential_inside_functional(tiny, x):
    model, base = tiny.nested_functional()
    out, tapped = graph.run(model, tf.constant(x), taps=("seq_base/conv1", "seq_base/conv2", "top_relu"))
    np.testing.assert_allclose(out, model.predict(x, verbose=0), atol=1e-6)
    np.testing.assert_allclose(tapped["seq_base/conv1"], sub_output(base, "conv1", x), atol=1e-5)
    np.testing.assert_allclose(tapped["seq_base/conv2"], base(x), atol=1e-5)
    np.testing.assert_allclose(tapped["top_relu"], np.maximum(base(x), 0), atol=1e-5)


def test_two_levels_deep(tiny, x):
    model, inner, middle = tiny.two_levels()
    taps = ("middle/inner/conv_a", "middle/conv_b", "middle/bn", "middle")
    out, tapped = graph.run(model, tf.constant(x), taps=taps)
    np.testing.assert_allclose(out, model.predict(x, verbose=0), atol=1e-6)
    np.testing.assert_allclose(tapped["middle/inner/conv_a"], inner(x), atol=1e-5)
    np.testing.assert_allclose(tapped["middle/conv_b"], sub_output(middle, "conv_b", x), atol=1e-5)
    np.testing.assert_allclose(tapped["middle/bn"], sub_output(middle, "bn", x), atol=1e-5)
    np.testing.assert_allclose(tapped["middle"], middle(x, training=False), atol=1e-5)


def test_run_is_in_inference_mode(tiny, x):
    """Dropout is off and BatchNorm uses its moving statistics, even when the caller is training."""
    model, _, _ = tiny.nested_sequential()
    first, _ = graph.run(model, tf.constant(x))
    second, _ = graph.run(model, tf.constant(x))
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(model(x, training=True), model(x, training=False), atol=1e-4)
    np.testing.assert_allclose(first, model(x, training=False), atol=1e-6)


def test_run_inside_tf_function_and_on_symbolic_inputs(tiny, x):
    model, base, _ = tiny.nested_sequential()
    traced = tf.function(lambda t: graph.run(model, t, taps=("base/conv2",)))
    out, tapped = traced(tf.constant(x))
    np.testing.assert_allclose(out, model.predict(x, verbose=0), atol=1e-6)
    np.testing.assert_allclose(tapped["base/conv2"], base(x, training=False), atol=1e-5)

    inp = keras.Input((12, 12, 3))
    sym_out, sym_taps = graph.run(model, inp, taps=("base/conv1",))
    rebuilt = keras.Model(inp, [sym_taps["base/conv1"], sym_out])
    conv1, probs = rebuilt(x)
    np.testing.assert_allclose(probs, model.predict(x, verbose=0), atol=1e-6)
    np.testing.assert_allclose(conv1, sub_output(base, "conv1", x), atol=1e-5)


def test_override_swaps_a_nested_layer_without_touching_the_model(tiny, x):
    model, base, (gap, dense) = tiny.nested_sequential()
    weights_before = [w.copy() for w in model.get_weights()]
    predict_before = model.predict(x, verbose=0)

    def no_relu(path, layer):
        return (lambda t, *a, **k: t) if path == "base/relu1" else None

    out, _ = graph.run(model, tf.constant(x), override=no_relu)
    bn_out = sub_output(base, "bn1", x)
    by_hand = dense(gap(base.get_layer("conv2")(bn_out)))
    np.testing.assert_allclose(out, by_hand, atol=1e-5)
    assert not np.allclose(out, predict_before, atol=1e-4)

    # the user's model is unchanged: same weights, same predictions, same layers
    for before, after in zip(weights_before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
    np.testing.assert_array_equal(model.predict(x, verbose=0), predict_before)
    assert isinstance(base.get_layer("relu1"), L.ReLU)


def test_handle_does_not_modify_the_users_model(tiny, handle_of, x):
    from interpret import explain

    model, _, _ = tiny.nested_sequential()
    weights_before = [w.copy() for w in model.get_weights()]
    predict_before = model.predict(x, verbose=0)
    m = handle_of(model)
    m.logits(x, prepared=True)
    explain(m, (x[0] * 255).astype(np.uint8), method="gradcam")
    explain(m, (x[0] * 255).astype(np.uint8), method="saliency")
    assert model.layers[-1].activation.__name__ == "softmax"
    for before, after in zip(weights_before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
    np.testing.assert_array_equal(model.predict(x, verbose=0), predict_before)


@pytest.mark.parametrize("wrap", [lambda o: [o], lambda o: {"probs": o}], ids=["list", "dict"])
def test_single_output_in_a_list_or_dict(handle_of, x, wrap):
    keras.utils.set_random_seed(0)
    inp = keras.Input((12, 12, 3))
    out = L.Dense(3, activation="softmax", name="probs")(L.GlobalAveragePooling2D()(L.Conv2D(4, 3)(inp)))
    model = keras.Model(inp, wrap(out))
    plain = keras.Model(inp, out)
    m = handle_of(model)
    assert m.head.kind == "softmax" and m.num_classes == 3
    np.testing.assert_allclose(m.predict(x), plain.predict(x, verbose=0), atol=1e-6)


def test_iter_layers_paths_and_find_layer(tiny):
    model, inner, middle = tiny.two_levels()
    paths = [p for p, _ in graph.iter_layers(model)]
    assert paths == [
        "middle",
        "middle/inner",
        "middle/inner/conv_a",
        "middle/conv_b",
        "middle/bn",
        "middle/relu_b",
        "gap",
        "predictions",
    ]
    assert graph.find_layer(model, "middle/inner") is inner
    assert graph.find_layer(model, "middle/inner/conv_a") is inner.get_layer("conv_a")
    with pytest.raises(KeyError, match="middle/nope"):
        graph.find_layer(model, "middle/nope")


def test_spatial_layers_and_output_layer_path(tiny):
    model, _, _ = tiny.two_levels()
    assert graph.spatial_layers(model) == [
        "middle",
        "middle/inner",
        "middle/inner/conv_a",
        "middle/conv_b",
        "middle/bn",
        "middle/relu_b",
    ]
    assert graph.output_layer_path(model) == "predictions"

    # a classifier whose last layer is itself a sub-model: the path descends into it
    keras.utils.set_random_seed(0)
    inp = keras.Input((4,))
    head = keras.Model(inp, L.Dense(3, activation="softmax", name="probs")(inp), name="head")
    outer = keras.Sequential([keras.Input((8, 8, 3)), L.Conv2D(4, 3), L.GlobalAveragePooling2D(), head])
    assert graph.output_layer_path(outer) == "head/probs"


def test_softmax_inside_a_nested_head_is_split_off(handle_of, rng):
    keras.utils.set_random_seed(0)
    inp = keras.Input((4,))
    head = keras.Model(inp, L.Dense(3, activation="softmax", name="probs")(inp), name="head")
    conv, gap = L.Conv2D(4, 3), L.GlobalAveragePooling2D()
    outer = keras.Sequential([keras.Input((8, 8, 3)), conv, gap, head])
    m = handle_of(outer)
    x = rng.random((2, 8, 8, 3), dtype=np.float32)
    w, b = head.get_layer("probs").get_weights()
    np.testing.assert_allclose(m.logits(x, prepared=True), np.asarray(gap(conv(x))) @ w + b, atol=1e-5)
    np.testing.assert_allclose(m.predict(x), outer.predict(x, verbose=0), atol=1e-6)
