"""Grad-CAM++: the closed-form alphas by hand, a tiny model by hand, and tf-keras-vis as an oracle."""

from __future__ import annotations

import keras
import numpy as np

from interpret import explain
from interpret.gradcam_plus_plus import gradcam_plus_plus, gradcampp_alphas, gradcampp_weights
from interpret.gradients import layer_gradients
from models.handle import ModelHandle
from models.preprocessing import PRESETS


def handle(model: keras.Model) -> ModelHandle:
    return ModelHandle("tiny", model, PRESETS["0..1"], [])


def conv_model(channels: int = 3, head: str | None = None, classes: int = 3, seed: int = 0) -> keras.Sequential:
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((20, 20, channels)),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(8, 3, activation="relu", name="last"),
            keras.layers.Flatten(),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(1 if head == "sigmoid" else classes, activation=head),
        ]
    )


def normalise(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float64)
    return (a - a.min()) / (a.max() - a.min())


def test_alphas_and_weights_by_hand():
    # channel 0: A = (1, 3), sum 4, g = (1, 2) -> alpha = 1/(2 + 4) = 1/6 and 4/(8 + 32) = 0.1
    # channel 1: A = (2, 2), sum 4, g = (0, -1) -> alpha = 0 (no gradient) and 1/(2 - 4) = -0.5
    acts = np.array([[[1.0, 2.0], [3.0, 2.0]]])  # (h=1, w=2, K=2)
    grads = np.array([[[1.0, 0.0], [2.0, -1.0]]])
    np.testing.assert_allclose(gradcampp_alphas(acts, grads), [[[1 / 6, 0.0], [0.1, -0.5]]])
    # paper's Eq. 19: w_0 = 1/6 * 1 + 0.1 * 2 = 0.3667; w_1 = 0 (ReLU of the gradients is 0)
    np.testing.assert_allclose(gradcampp_weights(acts, grads, normalize_alphas=False), [11 / 30, 0.0], rtol=1e-6)
    # reference code: divided by the channel's alpha sum 1/6 + 0.1 = 4/15 -> 11/30 * 15/4 = 1.375
    np.testing.assert_allclose(gradcampp_weights(acts, grads), [1.375, 0.0], rtol=1e-6)


def test_tiny_model_by_hand():
    # x (2x2) -> 1x1 conv: A0 = x, A1 = 1 - x -> GAP -> Dense. dS/dA_k = W[k, c] / 4 everywhere.
    model = keras.Sequential(
        [
            keras.Input((2, 2, 1)),
            keras.layers.Conv2D(2, 1, name="conv"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    model.layers[0].set_weights([np.array([1.0, -1.0]).reshape(1, 1, 1, 2), np.array([0.0, 1.0])])
    model.layers[2].set_weights([np.array([[2.0, -1.0], [1.0, 3.0]]), np.zeros(2)])
    m = handle(model)
    x = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32).reshape(1, 2, 2, 1)
    acts, grads, _ = layer_gradients(m, x, "conv", 0)
    np.testing.assert_allclose(grads[0, 0, 0], [0.5, 0.25], rtol=1e-6)
    # sum A0 = 10, sum A1 = -6: alpha0 = 1/(2 + 10 * 0.5) = 1/7, alpha1 = 1/(2 - 6 * 0.25) = 2
    np.testing.assert_allclose(gradcampp_alphas(acts[0], grads[0])[0, 0], [1 / 7, 2.0], rtol=1e-6)
    # paper: w = (4 * 1/7 * 0.5, 4 * 2 * 0.25) = (2/7, 2)
    np.testing.assert_allclose(gradcampp_weights(acts[0], grads[0], normalize_alphas=False), [2 / 7, 2.0], rtol=1e-6)
    # reference code: constant alphas normalise to 1/4, so w = ReLU(g) = (0.5, 0.25);
    # map = ReLU(0.5 x + 0.25 (1 - x)) = 0.25 x + 0.25
    result = gradcam_plus_plus(m, x, 0, layer="conv")
    np.testing.assert_allclose(result.extras["weights"], [0.5, 0.25], rtol=1e-6)
    np.testing.assert_allclose(result.heatmap, [[0.5, 0.75], [1.0, 1.25]], rtol=1e-6)


def test_agrees_with_tf_keras_vis():
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.utils.scores import CategoricalScore

    model = conv_model(classes=4)  # linear logits: tf-keras-vis needs no model modifier
    m = handle(model)
    x = np.random.default_rng(1).random((1, 20, 20, 3)).astype(np.float32)
    reference_tool = GradcamPlusPlus(model, clone=False)
    for target in range(4):
        reference = reference_tool(CategoricalScore([target]), x, penultimate_layer="last", expand_cam=False)[0]
        ours = gradcam_plus_plus(m, x, target, layer="last").heatmap
        assert ours.shape == reference.shape == (7, 7)
        assert ours.max() > 0
        corr = np.corrcoef(normalise(ours).ravel(), normalise(reference).ravel())[0, 1]
        assert corr >= 0.99


def test_differs_from_gradcam_and_uses_the_chosen_layer():
    m = handle(conv_model())
    picture = (np.random.default_rng(2).random((20, 20, 3)) * 255).astype(np.uint8)
    pp = explain(m, picture, method="gradcam_plus_plus")
    plain = explain(m, picture, method="gradcam")
    assert pp.layer == "last"
    assert not np.allclose(normalise(pp.heatmap), normalise(plain.heatmap), atol=0.02)
    early = explain(m, picture, method="gradcam_plus_plus", layer=m.conv_layers[0])
    assert early.extras["layer_map_shape"] == (18, 18)
