"""LIME through the lime package: same draws as lime, a linear model's known answer, seeds, gray models, boundaries."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from lime import lime_image

from interpret import explain
from interpret.lime_superpixels import (
    BatchedLimeImageExplainer,
    composites,
    row_scorer,
    segment,
    segment_at_working_size,
    shown_superpixels,
    superpixel_map,
    visible_pixels,
)
from interpret.render import boundaries
from models.handle import ModelHandle
from models.preprocessing import Preprocessing


def quadrants(size: int = 16, gray: bool = False) -> np.ndarray:
    """A picture of four flat quadrants in clearly different colours (plus slight texture)."""
    colours = np.array([[230, 30, 30], [30, 200, 40], [40, 60, 220], [240, 230, 60]], np.float64)
    pic = np.zeros((size, size, 3))
    half = size // 2
    for k, (y, x) in enumerate([(0, 0), (0, half), (half, 0), (half, half)]):
        pic[y : y + half, x : x + half] = colours[k]
    pic += np.random.default_rng(0).normal(0, 3, pic.shape)
    pic = np.clip(pic, 0, 255).astype(np.uint8)
    return pic.mean(axis=-1).astype(np.uint8) if gray else pic


def linear_model(shape, seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input(shape), keras.layers.Flatten(), keras.layers.Dense(2, name="dense")])
    w = np.random.default_rng(seed).normal(0, 1, (int(np.prod(shape)), 2)).astype(np.float32)
    model.get_layer("dense").set_weights([w, np.array([0.3, -0.2], np.float32)])
    return model


def test_composites_take_switched_off_superpixels_from_the_hidden_image():
    image = np.arange(8, dtype=np.float32).reshape(2, 2, 2)
    hidden = -np.ones_like(image)
    segments = np.array([[0, 1], [1, 2]])
    out = composites(image, hidden, segments, np.array([[1, 0, 1], [0, 1, 1]]))
    np.testing.assert_array_equal(out[0], [[[0, 1], [-1, -1]], [[-1, -1], [6, 7]]])
    np.testing.assert_array_equal(out[1], [[[-1, -1], [2, 3]], [[4, 5], [6, 7]]])


def test_batched_sampling_matches_lime_itself(rng):
    # Same random draws, same copies, same regression: the explanations are equal.
    image = rng.random((10, 10, 3))
    segments = np.repeat(np.repeat(np.arange(4).reshape(2, 2), 5, axis=0), 5, axis=1)
    weights = rng.normal(0, 1, (300, 2))

    def classify(batch):
        return np.asarray(batch).reshape(len(batch), -1) @ weights

    kwargs = dict(labels=(1,), top_labels=None, num_samples=60, batch_size=7, segmentation_fn=lambda _im: segments)
    ours = BatchedLimeImageExplainer(random_state=5).explain_instance(image, classify, **kwargs)
    theirs = lime_image.LimeImageExplainer(random_state=5).explain_instance(image, classify, **kwargs)
    assert dict(ours.local_exp[1]).keys() == dict(theirs.local_exp[1]).keys()
    for k, v in theirs.local_exp[1]:
        assert dict(ours.local_exp[1])[k] == pytest.approx(v, rel=1e-9, abs=1e-12)


def test_compiled_copies_match_lime_and_the_model_sees_them(tiny, handle_of, rng):
    # The compiled path (copies built inside the model's function) against stock lime
    # building the copies itself and calling a plain classifier_fn on them.
    m = handle_of(tiny.conv_softmax(input_shape=(10, 10, 3)))
    image = m.prepare(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8))[0]
    segments = np.repeat(np.repeat(np.arange(4).reshape(2, 2), 5, axis=0), 5, axis=1)

    def classify(batch):
        return m.probabilities(m.logits(np.asarray(batch, np.float32), prepared=True))

    kwargs = dict(labels=(2,), top_labels=None, num_samples=40, batch_size=6, segmentation_fn=lambda _im: segments)
    ours = BatchedLimeImageExplainer(random_state=1, score_rows=row_scorer(m)).explain_instance(
        image, classify, **kwargs
    )
    theirs = lime_image.LimeImageExplainer(random_state=1).explain_instance(image, classify, **kwargs)
    for k, v in theirs.local_exp[2]:
        assert dict(ours.local_exp[2])[k] == pytest.approx(v, rel=1e-4, abs=1e-7)


def test_linear_model_gets_each_superpixels_exact_contribution(handle_of):
    # For a linear model and zero fill, logit = b + sum_k z_k d_k with d_k = sum over superpixel k of w_p x_p:
    # the local linear fit recovers d_k (ridge's alpha=1 shrinks it a little over 1000 samples).
    model = linear_model((16, 16, 3))
    m = handle_of(model)
    picture = quadrants()
    e = explain(
        m, picture, "lime", target=0, segmenter="slic", n_segments=4, hide="zero", score="logit", positive_only=False
    )
    segments = e.extras["segments"]
    assert segments.shape == (16, 16) and segments.max() + 1 >= 2
    x = m.prepare(picture)[0]
    w = model.get_layer("dense").get_weights()[0][:, 0].reshape(16, 16, 3)
    contribution = np.array([(w * x)[segments == k].sum() for k in range(segments.max() + 1)])
    np.testing.assert_allclose(e.extras["weights"], contribution, rtol=0.03, atol=0.02)
    assert e.extras["fit_score"] > 0.99


def test_same_seed_same_result_other_seed_other_samples(tiny, handle_of):
    m = handle_of(tiny.conv_softmax(input_shape=(16, 16, 3)))
    picture = quadrants(24)
    a = explain(m, picture, "lime", num_samples=80, seed=7)
    b = explain(m, picture, "lime", num_samples=80, seed=7)
    c = explain(m, picture, "lime", num_samples=80, seed=8)
    np.testing.assert_array_equal(a.heatmap, b.heatmap)
    np.testing.assert_array_equal(a.extras["weights"], b.extras["weights"])
    assert not np.array_equal(a.extras["weights"], c.extras["weights"])


def test_grayscale_model_gets_superpixels_and_a_signed_map(tiny, handle_of):
    m = handle_of(tiny.conv_softmax(input_shape=(28, 28, 1)))
    picture = quadrants(28, gray=True)
    e = explain(m, picture, "lime", num_samples=60, positive_only=False, num_superpixels=3)
    assert e.heatmap.shape == (28, 28)
    assert e.extras["segments"].shape == (28, 28)
    # quickshift with lime's defaults, run at the working size, finds the quadrants (not one blob)
    assert e.extras["segments"].max() + 1 >= 4
    assert len(e.extras["shown"]) == 3
    assert np.count_nonzero(e.heatmap) > 0


@pytest.mark.parametrize("algorithm", ["quickshift", "slic", "felzenszwalb"])
def test_every_segmenter_labels_superpixels_from_zero(algorithm):
    labels = segment_at_working_size(quadrants(32) / 255.0, algorithm)
    assert labels.shape == (32, 32)
    assert labels.min() == 0
    np.testing.assert_array_equal(np.unique(labels), np.arange(labels.max() + 1))


def test_segmenter_parameters_matter():
    image = quadrants(64) / 255.0
    few = segment(image, "slic", n_segments=4).max() + 1
    many = segment(image, "slic", n_segments=64).max() + 1
    assert few < many
    with pytest.raises(ValueError, match="segmenter"):
        segment(image, "watershed")


def test_shown_superpixels_and_painting():
    weights = np.array([0.5, -2.0, 1.5, 0.1, -0.2], np.float32)
    np.testing.assert_array_equal(shown_superpixels(weights, 2, positive_only=True), [2, 0])
    np.testing.assert_array_equal(shown_superpixels(weights, 10, positive_only=True), [2, 0, 3])
    np.testing.assert_array_equal(shown_superpixels(weights, 2, positive_only=False), [1, 2])
    segments = np.array([[0, 1], [2, 4]])
    np.testing.assert_array_equal(superpixel_map(segments, weights, np.array([1, 2])), [[0.0, -2.0], [1.5, 0.0]])


def test_visible_pixels_undo_affine_preprocessing(tiny, handle_of):
    picture = quadrants(12)
    for preset in ("0..1", "-1..1", "0..255"):
        m = handle_of(tiny.conv_softmax(), preprocessing=preset)
        np.testing.assert_allclose(visible_pixels(m, m.prepare(picture)[0]), picture / 255.0, atol=1e-5)
    caffe = ModelHandle(
        "caffe", tiny.conv_softmax(), Preprocessing("caffe", "BGR", keras.applications.vgg16.preprocess_input), []
    )
    np.testing.assert_allclose(visible_pixels(caffe, caffe.prepare(picture)[0]), picture / 255.0, atol=1e-4)


def test_boundaries_are_drawn_at_the_pictures_size():
    picture = np.full((30, 40), 100, np.uint8)
    segments = np.zeros((10, 10), np.int64)
    segments[:, 5:] = 1
    marked = boundaries(picture, segments)
    assert marked.shape == (30, 40, 3) and marked.dtype == np.uint8
    yellow = np.all(marked == [255, 255, 0], axis=-1)
    assert yellow[:, 18:22].any(axis=1).all()  # the vertical boundary, halfway across
    np.testing.assert_array_equal(marked[:, :10], 100)  # far from it the picture is unchanged


def test_batch_size_is_passed_through_and_does_not_change_the_result(tiny, handle_of):
    m = handle_of(tiny.conv_softmax(input_shape=(16, 16, 3)))
    picture = quadrants(16)
    messages: list[str] = []
    a = explain(m, picture, "lime", num_samples=50, batch_size=7, progress=lambda _f, msg: messages.append(msg))
    b = explain(m, picture, "lime", num_samples=50, batch_size=0)
    np.testing.assert_allclose(a.extras["weights"], b.extras["weights"], rtol=1e-5, atol=1e-7)
    batches = [msg for msg in messages if msg.startswith("LIME samples") and not msg.endswith("done")]
    assert len(batches) == 8  # ceil(50 / 7)


def test_sample_cap_and_bad_choices(tiny, handle_of):
    m = handle_of(tiny.conv_softmax())
    picture = quadrants(12)
    with pytest.raises(ValueError, match="num_samples"):
        explain(m, picture, "lime", num_samples=100_000)
    with pytest.raises(ValueError, match="segmenter"):
        explain(m, picture, "lime", segmenter="watershed")
