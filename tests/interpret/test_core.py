"""interpret.explain: validation, target resolution, the heatmap at the picture's own size."""

from __future__ import annotations

import numpy as np
import pytest

from interpret import METHODS, explain
from interpret.explanation import MethodResult
from interpret.registry import Method


@pytest.fixture(scope="module")
def nested(tiny, handle_of):
    model, _, _ = tiny.nested_sequential(input_shape=(16, 16, 3), classes=4)
    return handle_of(model, ["ant", "bee", "cat", "dog"])


@pytest.fixture
def picture(rng):
    return (rng.random((16, 16, 3)) * 255).astype(np.uint8)


def test_target_none_is_top1(nested, picture):
    probs = nested.predict(picture)[0]
    logits = nested.logits(picture)[0]
    assert int(np.argmax(probs)) == int(np.argmax(logits))
    e = explain(nested, picture, method="gradcam")
    assert e.target == int(np.argmax(probs))
    assert e.target_name == nested.class_names[e.target]
    assert e.score == pytest.approx(float(logits[e.target]), rel=1e-5)


def test_target_by_index_and_by_name(nested, picture):
    assert explain(nested, picture, method="saliency", target=2).target == 2
    assert explain(nested, picture, method="saliency", target=np.int64(3)).target == 3
    e = explain(nested, picture, method="saliency", target="bee")
    assert e.target == 1 and e.target_name == "bee"


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"method": "nope"}, "Unknown method 'nope'; choose one of .*gradcam"),
        ({"method": "gradcam", "patch": 8}, "has no parameter patch"),
        ({"method": "gradcam", "layer": "base/missing"}, "Layer 'base/missing' has no spatial"),
        ({"method": "gradcam", "layer": "predictions"}, "Layer 'predictions' has no spatial"),
        ({"method": "gradcam", "target": 4}, r"target=4 is out of range: this model has classes 0..3"),
        ({"method": "saliency", "target": -1}, "out of range"),
        ({"method": "saliency", "target": "zebra"}, "Unknown class 'zebra'"),
    ],
)
def test_bad_requests_are_clear_value_errors(nested, picture, kwargs, words):
    with pytest.raises(ValueError, match=words):
        explain(nested, picture, **kwargs)


def test_ambiguous_class_name_asks_for_the_index(tiny, handle_of, picture):
    m = handle_of(tiny.conv_softmax(input_shape=(16, 16, 3)), ["cat", "dog", "cat"])
    with pytest.raises(ValueError, match="Several classes are named 'cat'; give the class index"):
        explain(m, picture, method="saliency", target="cat")
    assert explain(m, picture, method="saliency", target="dog").target == 1


def test_batch_of_pictures_is_refused(nested, rng):
    with pytest.raises(ValueError, match="one picture"):
        explain(nested, np.zeros((2, 16, 16, 3), np.uint8))


def test_layer_defaults_to_last_conv_and_is_none_for_saliency(nested, picture):
    assert explain(nested, picture, method="gradcam").layer == "base/conv2"
    assert explain(nested, picture, method="saliency").layer is None
    assert explain(nested, picture, method="gradcam", layer="base/conv1").layer == "base/conv1"


@pytest.mark.parametrize("method", ["gradcam", "saliency"])
@pytest.mark.parametrize("size", [(16, 16), (50, 31), (7, 5), (200, 90)])
def test_heatmap_comes_back_at_the_pictures_size(nested, rng, method, size):
    picture = (rng.random(size) * 255).astype(np.uint8)  # grayscale, any size
    e = explain(nested, picture, method=method)
    assert e.heatmap.shape == size
    assert e.heatmap.dtype == np.float32
    assert np.all(np.isfinite(e.heatmap))
    assert e.heatmap.max() > 0


def test_heatmap_is_the_method_map_resized_bilinearly(nested, picture):
    """The 12x12 Grad-CAM map, brought to a 32x32 picture: corners kept, values inside the map's range."""
    from interpret.gradcam import gradcam

    small = gradcam(nested, nested.prepare(picture), 0, layer="base/conv2").heatmap
    doubled = np.repeat(np.repeat(picture, 2, 0), 2, 1)  # area-averages back to the same model input
    big = explain(nested, doubled, method="gradcam", target=0, layer="base/conv2").heatmap
    assert small.shape == (12, 12) and big.shape == (32, 32)
    assert small.min() - 1e-6 <= big.min() and big.max() <= small.max() + 1e-6
    np.testing.assert_allclose(big[0, 0], small[0, 0], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(big[-1, -1], small[-1, -1], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(big.mean(), small.mean(), rtol=0.1)


def test_explain_reports_progress_and_cleans_non_finite_maps(nested, picture, monkeypatch):
    def broken(m, x, target, **_):
        heat = np.ones((4, 4), np.float32)
        heat[0, 0], heat[1, 1], heat[2, 2] = np.nan, np.inf, -np.inf
        return MethodResult(heat)

    monkeypatch.setitem(METHODS, "broken", Method("broken", "Broken", broken, "none", "gradient"))
    seen = []
    e = explain(nested, picture, method="broken", progress=lambda f, msg: seen.append(f))
    assert seen[0] == 0.0 and seen[-1] == 1.0
    assert np.all(np.isfinite(e.heatmap)) and e.heatmap.shape == (16, 16)


def test_explain_is_deterministic(nested, picture):
    for method in ("gradcam", "saliency"):
        a = explain(nested, picture, method=method, target=1).heatmap
        b = explain(nested, picture, method=method, target=1).heatmap
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("classes", "activation", "expected_classes"),
    [(1, "sigmoid", 2), (3, "sigmoid", 3), (1, None, 1), (3, None, 3)],
    ids=["binary", "multilabel", "linear-1", "linear-3"],
)
def test_every_head_kind_can_be_explained(tiny, handle_of, rng, classes, activation, expected_classes):
    m = handle_of(tiny.conv_softmax(input_shape=(16, 16, 3), classes=classes, activation=activation))
    assert m.num_classes == expected_classes
    picture = (rng.random((20, 18, 3)) * 255).astype(np.uint8)
    for method in ("gradcam", "saliency"):
        for target in range(expected_classes):
            e = explain(m, picture, method=method, target=target)
            assert e.heatmap.shape == (20, 18) and np.all(np.isfinite(e.heatmap))
    with pytest.raises(ValueError, match="out of range"):
        explain(m, picture, target=expected_classes)


@pytest.mark.parametrize("name", list(METHODS))
def test_score_is_the_target_logit_for_every_method_with_an_explicit_target(nested, picture, name):
    """With an explicit target, explain skips its own forward pass: the score must still be the logit."""
    counts = {p.name: min(p.default, 10) for p in METHODS[name].params if p.kind == "int" and p.default >= 10}
    logits = nested.logits(picture)[0]
    e = explain(nested, picture, method=name, target=2, **counts)
    assert e.target == 2
    assert e.score == pytest.approx(float(logits[2]), rel=1e-4, abs=1e-6)
