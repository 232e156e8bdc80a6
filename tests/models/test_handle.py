"""ModelHandle: the logits split, predictions, preprocessing, conv layers, class names."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from interpret.gradients import input_gradients, layer_gradients

L = keras.layers


def features_and_dense(model: keras.Model, x: np.ndarray, dense_name: str = "predictions"):
    """The input of the final Dense layer (computed by Keras) and its weights."""
    dense = model.get_layer(dense_name)
    features = keras.Model(model.inputs[0], dense.input)(x, training=False)
    w, b = dense.get_weights()
    return np.asarray(features), w, b


def test_softmax_head_is_split_off_and_logits_are_the_dense_preactivation(tiny, handle_of, rng):
    model = tiny.conv_softmax()
    m = handle_of(model)
    x = rng.random((4, 12, 12, 3), dtype=np.float32)
    f, w, b = features_and_dense(model, x)
    by_hand = f @ w + b
    assert m.head.kind == "softmax"
    np.testing.assert_allclose(m.logits(x, prepared=True), by_hand, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(m.predict(x), model.predict(x, verbose=0), atol=1e-6)
    # the split really changed something: the logits are not the probabilities
    assert not np.allclose(m.logits(x, prepared=True), model.predict(x, verbose=0), atol=1e-3)


@pytest.mark.parametrize("final", [lambda: L.Softmax(name="sm"), lambda: L.Activation("softmax", name="sm")])
def test_separate_softmax_layer_is_split_off(handle_of, rng, final):
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [keras.Input((8, 8, 3)), L.Conv2D(3, 3, name="conv"), L.Flatten(), L.Dense(4, name="dense"), final()]
    )
    m = handle_of(model)
    x = rng.random((3, 8, 8, 3), dtype=np.float32)
    f, w, b = features_and_dense(model, x, "dense")
    assert m.head.kind == "softmax" and m.num_classes == 4
    np.testing.assert_allclose(m.logits(x, prepared=True), f @ w + b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(m.predict(x), model.predict(x, verbose=0), atol=1e-6)


def test_binary_sigmoid_is_two_classes_with_half_logits(tiny, handle_of, rng):
    model = tiny.conv_softmax(classes=1, activation="sigmoid")
    m = handle_of(model, ["cat", "dog"])
    x = rng.random((5, 12, 12, 3), dtype=np.float32)
    f, w, b = features_and_dense(model, x)
    z = f @ w + b  # (5, 1)
    p = model.predict(x, verbose=0)  # (5, 1) = sigmoid(z)
    assert m.head.kind == "sigmoid" and m.num_classes == 2
    np.testing.assert_allclose(
        m.logits(x, prepared=True), np.concatenate([-z / 2, z / 2], axis=1), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(m.predict(x), np.concatenate([1 - p, p], axis=1), atol=1e-6)
    np.testing.assert_allclose(m.predict(x).sum(axis=1), 1.0, atol=1e-6)


def test_binary_sigmoid_as_a_separate_activation_layer(handle_of, rng):
    keras.utils.set_random_seed(2)
    model = keras.Sequential(
        [keras.Input((8, 8, 3)), L.Conv2D(3, 3), L.Flatten(), L.Dense(1, name="dense"), L.Activation("sigmoid")]
    )
    m = handle_of(model)
    x = rng.random((3, 8, 8, 3), dtype=np.float32)
    f, w, b = features_and_dense(model, x, "dense")
    z = f @ w + b
    assert m.head.kind == "sigmoid"
    np.testing.assert_allclose(
        m.logits(x, prepared=True), np.concatenate([-z / 2, z / 2], axis=1), rtol=1e-5, atol=1e-6
    )
    p = model.predict(x, verbose=0)
    np.testing.assert_allclose(m.predict(x), np.concatenate([1 - p, p], axis=1), atol=1e-6)


def test_binary_sigmoid_without_names_gets_two_default_names(tiny, handle_of):
    m = handle_of(tiny.conv_softmax(classes=1, activation="sigmoid"))
    assert m.class_names == ["class 0", "class 1"]


def test_multilabel_sigmoid_keeps_one_probability_per_unit(tiny, handle_of, rng):
    model = tiny.conv_softmax(classes=3, activation="sigmoid")
    m = handle_of(model)
    x = rng.random((4, 12, 12, 3), dtype=np.float32)
    f, w, b = features_and_dense(model, x)
    assert m.head.kind == "multilabel" and m.num_classes == 3
    np.testing.assert_allclose(m.logits(x, prepared=True), f @ w + b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(m.predict(x), model.predict(x, verbose=0), atol=1e-6)


def test_linear_single_unit_head_reports_the_raw_score(tiny, handle_of, rng):
    model = tiny.conv_softmax(classes=1, activation=None)
    m = handle_of(model)
    x = rng.random((3, 12, 12, 3), dtype=np.float32)
    assert m.head.kind == "linear" and m.num_classes == 1
    np.testing.assert_allclose(m.predict(x), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_linear_multi_unit_head_is_read_as_logits(tiny, handle_of, rng):
    model = tiny.conv_softmax(classes=3, activation=None)
    m = handle_of(model)
    x = rng.random((3, 12, 12, 3), dtype=np.float32)
    raw = model.predict(x, verbose=0)
    np.testing.assert_allclose(m.logits(x, prepared=True), raw, rtol=1e-5, atol=1e-6)
    e = np.exp(raw - raw.max(axis=1, keepdims=True))
    np.testing.assert_allclose(m.predict(x), e / e.sum(axis=1, keepdims=True), atol=1e-6)


@pytest.mark.parametrize(
    "builder", ["conv_softmax", "conv_sequential", "nested_sequential", "nested_functional", "two_levels"]
)
def test_predict_equals_the_model_on_prepared_input(tiny, handle_of, rng, builder):
    built = getattr(tiny, builder)()
    model = built[0] if isinstance(built, tuple) else built
    m = handle_of(model)
    pictures = (rng.random((3, 12, 12, 3)) * 255).astype(np.uint8)
    x = m.prepare(pictures)
    np.testing.assert_allclose(x, pictures.astype(np.float32) / 255.0, atol=1e-7)
    np.testing.assert_allclose(m.predict(pictures), model.predict(x, verbose=0), atol=1e-5)
    top = m.top_k(pictures[0], k=2)
    assert [t[0] for t in top] == list(np.argsort(-model.predict(x[:1], verbose=0)[0])[:2])


# ---- prepare ------------------------------------------------------------------------------


@pytest.fixture
def rgb_handle(tiny, handle_of):
    return handle_of(tiny.conv_softmax())


@pytest.fixture
def gray_handle(tiny, handle_of):
    return handle_of(tiny.conv_softmax(input_shape=(12, 12, 1)))


def test_prepare_uint8_and_unit_float_agree(rgb_handle, rng):
    pixels = (rng.random((12, 12, 3)) * 255).astype(np.uint8)
    as_float = pixels.astype(np.float64) / 255.0
    a, b = rgb_handle.prepare(pixels), rgb_handle.prepare(as_float)
    assert a.shape == (1, 12, 12, 3) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(a[0], pixels / 255.0, atol=1e-6)


def test_prepare_accepts_other_integer_types_in_0_255(rgb_handle, rng):
    pixels = (rng.random((12, 12, 3)) * 255).astype(np.uint8)
    for dtype in (np.int64, np.uint16, np.int32):
        np.testing.assert_array_equal(rgb_handle.prepare(pixels.astype(dtype)), rgb_handle.prepare(pixels))


def test_prepare_gray_to_rgb_repeats_the_channel(rgb_handle, rng):
    gray = (rng.random((12, 12)) * 255).astype(np.uint8)
    x = rgb_handle.prepare(gray)
    assert x.shape == (1, 12, 12, 3)
    for c in range(3):
        np.testing.assert_allclose(x[0, ..., c], gray / 255.0, atol=1e-6)
    np.testing.assert_allclose(rgb_handle.prepare(gray[..., None]), x)


def test_prepare_rgb_to_gray_uses_itu_r_601_weights(gray_handle):
    picture = np.zeros((12, 12, 3), dtype=np.uint8)
    picture[..., 0], picture[..., 1], picture[..., 2] = 200, 100, 50
    x = gray_handle.prepare(picture)
    assert x.shape == (1, 12, 12, 1)
    np.testing.assert_allclose(x, (0.299 * 200 + 0.587 * 100 + 0.114 * 50) / 255.0, atol=1e-5)


def test_prepare_drops_alpha(rgb_handle, rng):
    rgb = (rng.random((12, 12, 3)) * 255).astype(np.uint8)
    rgba = np.concatenate([rgb, np.full((12, 12, 1), 7, np.uint8)], axis=-1)
    np.testing.assert_allclose(rgb_handle.prepare(rgba), rgb_handle.prepare(rgb))
    gray = rgb[..., 0]
    gray_alpha = np.stack([gray, np.full_like(gray, 7)], axis=-1)  # (H, W, 2): one picture, not a batch
    np.testing.assert_allclose(rgb_handle.prepare(gray_alpha), rgb_handle.prepare(gray))


@pytest.mark.parametrize("size", [(12, 12), (24, 24), (5, 7), (40, 17), (300, 200)])
def test_prepare_resizes_any_size(rgb_handle, size):
    h, w = size
    picture = np.full((h, w, 3), 90, dtype=np.uint8)
    x = rgb_handle.prepare(picture)
    assert x.shape == (1, 12, 12, 3)
    np.testing.assert_allclose(x, 90 / 255.0, atol=1e-5)


def test_prepare_downscale_averages_blocks(rgb_handle, rng):
    blocks = (rng.random((12, 12, 3)) * 255).astype(np.uint8)
    big = np.repeat(np.repeat(blocks, 2, axis=0), 2, axis=1)  # 24x24, each pixel a 2x2 block
    np.testing.assert_allclose(rgb_handle.prepare(big)[0], blocks / 255.0, atol=1e-5)


def test_prepare_keeps_a_batch(rgb_handle, rng):
    batch = (rng.random((4, 20, 16, 3)) * 255).astype(np.uint8)
    assert rgb_handle.prepare(batch).shape == (4, 12, 12, 3)
    gray_batch = (rng.random((4, 20, 16)) * 255).astype(np.uint8)  # (N, H, W)
    assert rgb_handle.prepare(gray_batch).shape == (4, 12, 12, 3)


@pytest.mark.parametrize(
    ("picture", "words"),
    [
        (np.zeros((12,), np.uint8), "shape"),
        (np.zeros((1, 2, 12, 12, 3), np.uint8), "shape"),
        (np.zeros((2, 12, 12, 5), np.uint8), "shape"),
        (np.zeros((0, 12, 3), np.uint8), "empty"),
        (np.full((12, 12, 3), 2.0), "0..1"),
        (np.full((12, 12, 3), -0.5), "0..1"),
        (np.full((12, 12, 3), np.nan), "NaN"),
        (np.full((12, 12, 3), 300, np.uint16), "integer image must hold values in 0..255; .* 300 to 300"),
        (np.full((12, 12, 3), -1, np.int64), "0..255"),
    ],
)
def test_prepare_refuses_bad_pictures_clearly(rgb_handle, picture, words):
    with pytest.raises(ValueError, match=words):
        rgb_handle.prepare(picture)


def test_preprocessing_presets_scale_as_described(tiny, handle_of):
    picture = np.array([[[0, 127, 255]]], dtype=np.uint8).repeat(12, 0).repeat(12, 1)
    model = tiny.conv_softmax()
    np.testing.assert_allclose(
        handle_of(model, preprocessing="-1..1").prepare(picture)[0, 0, 0], [-1, 127 / 127.5 - 1, 1]
    )
    np.testing.assert_allclose(handle_of(model, preprocessing="0..255").prepare(picture)[0, 0, 0], [0, 127, 255])


# ---- layers, gradients, names -----------------------------------------------------------


def test_conv_layers_reach_into_nested_models(tiny, handle_of):
    model, _, _ = tiny.nested_sequential()
    m = handle_of(model)
    assert m.conv_layers == ["base", "base/conv1", "base/bn1", "base/relu1", "base/conv2"]
    assert m.last_conv_layer == "base/conv2"
    assert m.layer("base/conv2") is model.layers[0].get_layer("conv2")

    deep, _, _ = tiny.two_levels()
    md = handle_of(deep)
    assert "middle/inner/conv_a" in md.conv_layers
    assert md.last_conv_layer == "middle/relu_b"
    assert md.layer("middle/inner/conv_a").name == "conv_a"


def test_unknown_layer_path_is_a_clear_key_error(tiny, handle_of):
    m = handle_of(tiny.nested_sequential()[0])
    with pytest.raises(KeyError, match="base/nope"):
        m.layer("base/nope")


def test_model_without_spatial_layers_has_a_clear_last_conv_error(tiny, handle_of):
    m = handle_of(tiny.dense_head(activation="softmax"))
    assert m.conv_layers == []
    with pytest.raises(ValueError, match="no layer with a spatial"):
        _ = m.last_conv_layer


def test_frozen_base_still_gives_gradients(tiny, handle_of, rng):
    model, base, _ = tiny.nested_sequential(frozen=True)
    assert not base.trainable and not base.trainable_weights
    m = handle_of(model)
    x = rng.random((1, 12, 12, 3), dtype=np.float32)
    g, s = input_gradients(m, x, 1)
    assert g.shape == x.shape and np.abs(g).max() > 0
    acts, grads, s2 = layer_gradients(m, x, "base/conv1", 1)
    assert acts.shape == (1, 10, 10, 4) and np.abs(grads).max() > 0
    np.testing.assert_allclose(s, s2, rtol=1e-5)

    # the input gradient matches a finite difference of the target logit
    direction = rng.standard_normal(x.shape).astype(np.float32)
    direction /= np.linalg.norm(direction)
    eps = 1e-2
    plus = m.logits(x + eps * direction, prepared=True)[0, 1]
    minus = m.logits(x - eps * direction, prepared=True)[0, 1]
    np.testing.assert_allclose((plus - minus) / (2 * eps), float((g * direction).sum()), rtol=2e-2, atol=1e-4)


def test_class_name_count_mismatch_is_a_clear_error(tiny, handle_of):
    with pytest.raises(ValueError, match="3 classes but 2 class names"):
        handle_of(tiny.conv_softmax(), ["a", "b"])
    with pytest.raises(ValueError, match="2 classes but 1 class names"):
        handle_of(tiny.conv_softmax(classes=1, activation="sigmoid"), ["only"])


def test_models_the_handle_cannot_explain_are_refused(handle_of):
    a, b = keras.Input((8, 8, 3)), keras.Input((8, 8, 3))
    two_inputs = keras.Model([a, b], L.Dense(2)(L.Flatten()(L.Add()([a, b]))))
    with pytest.raises(ValueError, match="several inputs"):
        handle_of(two_inputs)
    free = keras.Input((None, None, 3))
    any_size = keras.Model(free, L.Dense(2)(L.GlobalAveragePooling2D()(L.Conv2D(2, 3)(free))))
    with pytest.raises(ValueError, match="fixed size"):
        handle_of(any_size)


def test_logits_model_is_a_keras_model_giving_the_logits(tiny, handle_of, rng):
    model, _, _ = tiny.nested_sequential()
    m = handle_of(model)
    x = rng.random((2, 12, 12, 3), dtype=np.float32)
    np.testing.assert_allclose(m.logits_model(x), m.logits(x, prepared=True), atol=1e-5)
    tapped, logits = m.tap_model(["base/conv1"])(x)
    assert tuple(tapped.shape) == (2, 10, 10, 4)
    np.testing.assert_allclose(logits, m.logits(x, prepared=True), atol=1e-5)
    with tf.GradientTape() as tape:
        xt = tf.constant(x)
        tape.watch(xt)
        score = m.logits_model(xt)[:, 0]
    assert np.abs(tape.gradient(score, xt).numpy()).max() > 0
