"""Batched explanations: the same maps as ``explain`` picture by picture, in one pass for Grad-CAM and saliency."""

from __future__ import annotations

import numpy as np
import pytest

from interpret import explain
from interpret.batch import BatchSettings, batch_rows, explain_batch, explain_pictures, predict_pixels


@pytest.fixture(scope="module")
def nested(tiny, handle_of):
    model, _, _ = tiny.nested_sequential(input_shape=(12, 12, 3), classes=3)
    return handle_of(model, ["cat", "dog", "fox"])


@pytest.fixture(scope="module")
def pixels():
    return np.random.default_rng(3).integers(0, 256, (9, 12, 12, 3), dtype=np.uint8)


@pytest.mark.parametrize("method", ["gradcam", "saliency", "occlusion", "guided_backprop"])
def test_batched_maps_equal_explain_picture_by_picture(nested, pixels, method):
    """Batched (Grad-CAM, saliency) or looped (the others): each map is explain's for that picture and class."""
    targets = np.array([0, 1, 2, -1, 0, 1, -1, 2, 0])  # -1: the top-1 class
    b = explain_batch(nested, pixels, method, targets)
    top = np.argmax(nested.predict(pixels), axis=-1)
    np.testing.assert_array_equal(b.targets, np.where(targets < 0, top, targets))
    assert b.heatmaps.shape == (9, 12, 12) and b.heatmaps.dtype == np.float32
    for i in range(len(pixels)):
        e = explain(nested, pixels[i], method, target=int(b.targets[i]))
        scale = max(float(np.abs(e.heatmap).max()), 1e-6)
        np.testing.assert_allclose(b.heatmaps[i] / scale, e.heatmap / scale, atol=1e-5)
        assert b.scores[i] == pytest.approx(e.score, rel=1e-4, abs=1e-5)


def test_defaults_and_checks(nested, pixels):
    np.testing.assert_allclose(predict_pixels(nested, pixels), nested.predict(pixels), atol=1e-6)
    maps = explain_pictures(nested, pixels[:2], "gradcam")
    assert maps.shape == (2, 12, 12)
    assert explain_batch(nested, pixels[:0], "gradcam").heatmaps.shape == (0, 12, 12)
    with pytest.raises(ValueError, match="input size"):
        explain_batch(nested, np.zeros((2, 10, 10, 3), np.uint8), "gradcam")
    with pytest.raises(ValueError, match="targets must be"):
        explain_batch(nested, pixels[:1], "gradcam", [5])
    with pytest.raises(ValueError, match="Unknown method"):
        BatchSettings(methods=["nope"]).check()
    with pytest.raises(ValueError, match="Unknown metric"):
        BatchSettings(methods=["gradcam"], metrics=["accuracy"]).check()


def test_batch_rows_one_row_per_picture_and_method(nested, pixels):
    labels = np.array([0, 1, 2, -1, 0, 1, 2, 0, 1])
    settings = BatchSettings(methods=["gradcam", "saliency"], metrics=["deletion"], steps=4).check()
    cols = batch_rows(nested, pixels, labels, [f"p{i}" for i in range(9)], np.arange(100, 109), settings)
    assert len(cols["index"]) == 18 and list(cols["method"][:9]) == ["gradcam"] * 9
    predicted = np.argmax(nested.predict(pixels), axis=-1)
    np.testing.assert_array_equal(cols["predicted"][:9], predicted)
    np.testing.assert_array_equal(cols["target"][9:], predicted)  # target: the prediction by default
    assert cols["correct"][3] == -1 and cols["correct"][0] == int(predicted[0] == 0)
    assert cols["heatmap"].shape == (18, 144) and np.isfinite(cols["deletion_auc"]).all()
    assert list(cols["id"][:2]) == ["p0", "p1"] and cols["index"][0] == 100
