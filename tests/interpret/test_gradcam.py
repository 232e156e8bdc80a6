"""Grad-CAM (Selvaraju et al. 2017): hand-computed cases, tf-keras-vis as oracle, nested == flat."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from interpret import explain
from interpret.gradcam import gradcam, gradcam_weights, weighted_map

L = keras.layers
KERNEL = np.array([2.0, -1.0], dtype=np.float32).reshape(1, 1, 1, 2)  # A_0 = 2x, A_1 = -x


def test_gradcam_weights_and_weighted_map_by_hand():
    grads = np.zeros((2, 2, 2), np.float32)
    grads[..., 0] = [[1, 2], [3, 6]]
    grads[..., 1] = [[-4, 0], [0, 0]]
    np.testing.assert_allclose(gradcam_weights(grads), [3.0, -1.0])
    acts = np.zeros((2, 2, 2), np.float32)
    acts[..., 0] = [[1, 0], [0, 2]]
    acts[..., 1] = [[1, 5], [0, 0]]
    weights = np.array([3.0, -1.0], np.float32)
    np.testing.assert_allclose(weighted_map(acts, weights, relu=False), [[2, -5], [0, 6]])
    np.testing.assert_allclose(weighted_map(acts, weights), [[2, 0], [0, 6]])


def known_gap_model() -> keras.Model:
    inp = keras.Input((4, 4, 1))
    a = L.Conv2D(2, 1, use_bias=False, name="conv")(inp)
    out = L.Dense(2, activation="softmax", name="dense")(L.GlobalAveragePooling2D()(a))
    model = keras.Model(inp, out)
    model.get_layer("conv").set_weights([KERNEL])
    model.get_layer("dense").set_weights([np.array([[1.0, -1.0], [0.5, 2.0]], np.float32), np.array([0.1, -0.2])])
    return model


def test_gradcam_by_hand_gap_head(handle_of):
    """logit_c = sum_k W_kc mean(A_k): alpha_kc = W_kc / 16, so cam_c = relu((2 W_0c - W_1c) x / 16)."""
    m = handle_of(known_gap_model(), preprocessing="-1..1")
    picture = np.arange(16, dtype=np.uint8).reshape(4, 4) * 17  # 0..255
    x = picture / 127.5 - 1.0  # negative and positive values
    e0 = explain(m, picture, method="gradcam", target=0, layer="conv")
    np.testing.assert_allclose(e0.extras["weights"], [1.0 / 16, 0.5 / 16], rtol=1e-6)
    np.testing.assert_allclose(e0.heatmap, np.maximum(1.5 * x / 16, 0), rtol=1e-5, atol=1e-7)
    e1 = explain(m, picture, method="gradcam", target=1, layer="conv")
    np.testing.assert_allclose(e1.heatmap, np.maximum(-4.0 * x / 16, 0), rtol=1e-5, atol=1e-7)
    assert e0.layer == "conv" and e0.heatmap.shape == (4, 4) and e0.heatmap.dtype == np.float32


def test_gradcam_by_hand_dense_head(handle_of):
    """With Flatten + Dense, d logit_c / d A_k(i, j) = V[i, j, k, c]; alpha_kc is its spatial mean."""
    keras.utils.set_random_seed(5)
    inp = keras.Input((3, 4, 1))
    a = L.Conv2D(2, 1, use_bias=False, name="conv")(inp)
    out = L.Dense(3, activation="softmax", name="dense")(L.Flatten()(a))
    model = keras.Model(inp, out)
    model.get_layer("conv").set_weights([KERNEL])
    v = model.get_layer("dense").get_weights()[0].reshape(3, 4, 2, 3)
    m = handle_of(model, preprocessing="-1..1")
    picture = np.random.default_rng(2).integers(0, 256, (3, 4), dtype=np.uint8)
    x = picture / 127.5 - 1.0
    acts = np.stack([2 * x, -x], axis=-1)
    for c in range(3):
        alpha = v[..., c].mean(axis=(0, 1))
        expected = np.maximum((acts * alpha).sum(axis=-1), 0)
        e = explain(m, picture, method="gradcam", target=c, layer="conv")
        np.testing.assert_allclose(e.extras["weights"], alpha, rtol=1e-5)
        np.testing.assert_allclose(e.heatmap, expected, rtol=1e-5, atol=1e-7)


def test_gradcam_binary_sigmoid_classes_are_mirror_images(tiny, handle_of, rng):
    """Logits [-z/2, z/2]: class 0's channel weights are minus class 1's."""
    m = handle_of(tiny.conv_softmax(classes=1, activation="sigmoid"), ["no", "yes"])
    x = m.prepare((rng.random((12, 12, 3)) * 255).astype(np.uint8))
    w0 = gradcam(m, x, 0, layer="conv2").extras["weights"]
    w1 = gradcam(m, x, 1, layer="conv2").extras["weights"]
    assert np.abs(w1).max() > 0
    np.testing.assert_allclose(w0, -w1, rtol=1e-5)


def tkv_gradcam(model: keras.Model, x: np.ndarray, target: int, layer: str) -> np.ndarray:
    """tf-keras-vis Grad-CAM at the layer's own resolution, on the named layer itself."""
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    oracle = Gradcam(model, model_modifier=ReplaceToLinear(), clone=True)
    cam = oracle(
        CategoricalScore([target]),
        x,
        penultimate_layer=layer,
        seek_penultimate_conv_layer=False,  # else it walks back from a ReLU to the Conv before it
        expand_cam=False,
        normalize_cam=True,
    )
    return np.asarray(cam)[0]


def test_gradcam_agrees_with_tf_keras_vis(tiny, handle_of, correlation, rng):
    model = tiny.conv_softmax(input_shape=(20, 16, 3), classes=4, seed=3)
    m = handle_of(model)
    x = m.prepare((rng.random((20, 16, 3)) * 255).astype(np.uint8))
    compared = 0
    for layer in ("conv1", "conv2"):
        for target in range(4):
            ours = gradcam(m, x, target, layer=layer).heatmap
            if ours.max() <= 0:  # ReLU cut everything; both sides are zero, nothing to correlate
                continue
            theirs = tkv_gradcam(model, x, target, layer)
            assert correlation(ours, theirs) >= 0.99, (layer, target)
            compared += 1
    assert compared >= 4


def test_gradcam_agrees_with_tf_keras_vis_on_the_trained_bundled_model(correlation):
    """Real weights, BatchNorm and Dropout in inference mode: the trained Fashion-MNIST CNN."""
    from pathlib import Path

    from interpret.images import read_image
    from models import load

    m = load("fashion-mnist-cnn")
    samples = Path(__file__).resolve().parents[2] / "assets" / "samples" / "fashion"
    for name in ("9_ankle-boot_1.png", "1_trouser_1.png", "8_bag_2.png"):
        x = m.prepare(read_image(samples / name))
        target = int(name.split("_")[0])
        for layer in ("block3_relu2", "block2_conv2"):
            ours = gradcam(m, x, target, layer=layer).heatmap
            assert ours.max() > 0
            assert correlation(ours, tkv_gradcam(m.model, x, target, layer)) >= 0.99, (name, layer)


def test_gradcam_nested_equals_flat_tiny(tiny, handle_of, rng):
    model, base, (gap, dense) = tiny.nested_sequential()
    flat = keras.Model(base.inputs[0], dense(gap(base.outputs[0])))
    nested, plain = handle_of(model), handle_of(flat)
    picture = (rng.random((30, 25, 3)) * 255).astype(np.uint8)
    peaks = []
    for layer in ("conv1", "relu1", "conv2"):
        for target in range(3):
            a = explain(nested, picture, method="gradcam", target=target, layer=f"base/{layer}")
            b = explain(plain, picture, method="gradcam", target=target, layer=layer)
            np.testing.assert_allclose(a.heatmap, b.heatmap, rtol=1e-5, atol=1e-7)
            peaks.append(float(b.heatmap.max()))
    assert sum(p > 0 for p in peaks) >= 6
    assert explain(nested, picture).layer == "base/conv2"


def test_gradcam_sequential_inside_functional_equals_flat(tiny, handle_of, rng):
    model, base = tiny.nested_functional()
    conv1, conv2 = base.get_layer("conv1"), base.get_layer("conv2")
    relu, gap, dense = (model.get_layer(n) for n in ("top_relu", "gap", "predictions"))
    inp = keras.Input((12, 12, 3))
    flat = keras.Model(inp, dense(gap(relu(conv2(conv1(inp))))))  # the same layer objects, called flat
    nested, plain = handle_of(model), handle_of(flat)
    picture = (rng.random((17, 40, 3)) * 255).astype(np.uint8)
    assert nested.last_conv_layer == "top_relu"
    peaks = []
    for nested_layer, flat_layer in (
        ("seq_base/conv1", "conv1"),
        ("seq_base/conv2", "conv2"),
        ("top_relu", "top_relu"),
    ):
        a = explain(nested, picture, method="gradcam", target=0, layer=nested_layer)
        b = explain(plain, picture, method="gradcam", target=0, layer=flat_layer)
        assert a.heatmap.shape == (17, 40)
        np.testing.assert_allclose(a.heatmap, b.heatmap, rtol=1e-5, atol=1e-7)
        peaks.append(float(b.heatmap.max()))
    assert min(peaks) > 0


# ---- a realistic transfer-learning model: MobileNetV2 as a layer of the user's model ------


@pytest.fixture(scope="module")
def mobilenet():
    """MobileNetV2 (alpha 0.35, 96x96, random weights) nested in a Sequential and in a functional model.

    Random weights with BatchNorm's default statistics make the activations vanish (logits ~1e-10);
    one pass in training mode with momentum 0 calibrates the statistics so the maps mean something.
    """
    keras.utils.set_random_seed(0)
    base = keras.applications.MobileNetV2(weights=None, include_top=False, input_shape=(96, 96, 3), alpha=0.35)
    batch_norms = [layer for layer in base.layers if isinstance(layer, L.BatchNormalization)]
    for bn in batch_norms:
        bn.momentum = 0.0
    base(np.random.default_rng(1).uniform(-1, 1, (8, 96, 96, 3)).astype(np.float32), training=True)
    for bn in batch_norms:
        bn.momentum = 0.99
    gap = L.GlobalAveragePooling2D(name="gap")
    dense = L.Dense(5, activation="softmax", name="predictions")
    sequential = keras.Sequential([keras.Input((96, 96, 3)), base, gap, dense], name="user_sequential")
    inp = keras.Input((96, 96, 3))
    functional = keras.Model(inp, dense(gap(base(inp))), name="user_functional")
    flat = keras.Model(base.inputs[0], dense(gap(base.outputs[0])), name="flat")
    return base, sequential, functional, flat


@pytest.mark.slow
def test_gradcam_nested_mobilenet_equals_flat(mobilenet, handle_of, correlation):
    base, sequential, functional, flat = mobilenet
    plain = handle_of(flat, preprocessing="-1..1")
    picture = (np.random.default_rng(4).random((120, 80, 3)) * 255).astype(np.uint8)
    x = plain.prepare(picture)
    assert np.abs(plain.logits(x, prepared=True)).max() > 1e-3  # calibrated: not a vanishing network
    for user_model in (sequential, functional):
        m = handle_of(user_model, preprocessing="-1..1")
        np.testing.assert_allclose(m.predict(picture), plain.predict(picture), atol=1e-5)
        assert m.last_conv_layer == f"{base.name}/out_relu"
        assert f"{base.name}/Conv1" in m.conv_layers

    target = int(np.argmax(plain.logits(x, prepared=True)[0]))
    # default layer (the last conv, 3x3) on the Sequential user model
    a = explain(handle_of(sequential, preprocessing="-1..1"), picture, method="gradcam", target=target)
    b = explain(plain, picture, method="gradcam", target=target, layer="out_relu")
    assert a.layer == f"{base.name}/out_relu" and a.heatmap.shape == (120, 80)
    assert np.abs(b.heatmap).max() > 0
    np.testing.assert_allclose(a.heatmap, b.heatmap, rtol=1e-4, atol=1e-6 * float(b.heatmap.max()))

    # a deeper layer (6x6) on the functional user model, and tf-keras-vis on the flat one
    layer = "block_13_expand_relu"
    ours_nested = gradcam(handle_of(functional, preprocessing="-1..1"), x, target, layer=f"{base.name}/{layer}").heatmap
    ours_flat = gradcam(plain, x, target, layer=layer).heatmap
    assert ours_flat.shape == (6, 6) and ours_flat.max() > 0
    np.testing.assert_allclose(ours_nested, ours_flat, rtol=1e-4, atol=1e-6 * float(ours_flat.max()))
    assert correlation(ours_flat, tkv_gradcam(flat, x, target, layer)) >= 0.99


def test_tf_keras_vis_cannot_reach_into_the_nested_model(mobilenet):
    """Why CNN Lens walks the graph itself: tf-keras-vis fails on a base nested as a layer."""
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.utils.scores import CategoricalScore

    base, _, functional, _ = mobilenet
    x = np.zeros((1, 96, 96, 3), np.float32)
    with pytest.raises(ValueError, match="not connected|Graph disconnected|disconnected"):
        Gradcam(functional, clone=False)(
            CategoricalScore([0]), x, penultimate_layer=base.get_layer("out_relu"), seek_penultimate_conv_layer=False
        )
