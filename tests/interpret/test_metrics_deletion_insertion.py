"""Deletion and insertion (Petsiuk et al. 2018): hand-computed curves of a linear model, substrates, batching."""

from __future__ import annotations

import threading

import keras
import numpy as np
import pytest

from interpret import Cancelled, Progress
from interpret.batching import resolve_batch_size
from interpret.metrics import deletion, deletion_insertion, deletion_insertion_maps, insertion
from interpret.metrics import perturb as perturb_module
from interpret.metrics.deletion_insertion import auc, step_counts
from interpret.metrics.perturb import pixel_ranks, substrate_of


def linear_handle(handle_of, weights: np.ndarray, bias=(0.0, 0.0)):
    """Flatten -> Dense(2): logit_t = sum_p weights[p, t] * x_p + bias_t, x = pixels / 255."""
    h, w = weights.shape[:2]
    model = keras.Sequential([keras.Input((h, w, 1)), keras.layers.Flatten(), keras.layers.Dense(2, name="dense")])
    model.get_layer("dense").set_weights([weights.reshape(h * w, 2).astype(np.float32), np.asarray(bias, np.float32)])
    return handle_of(model)


def test_deletion_of_a_linear_model_by_hand(handle_of):
    # x = [[1, 0], [1, 1]] (pixels 255 and 0), w(class 1) = [[3, 5], [-1, 2]]: contributions w*x = [[3, 0], [-1, 2]]
    weights = np.zeros((2, 2, 2))
    weights[..., 1] = [[3, 5], [-1, 2]]
    m = linear_handle(handle_of, weights)
    picture = np.array([[255, 0], [255, 255]], np.uint8)
    heat = np.array([[3.0, 0.0], [-1.0, 2.0]])
    c = deletion(m, picture, heat, target=1, steps=4, substrate="zero", score="logit")
    # f = 4; remove 3, then 2, then 0, then -1:  4, 1, -1, -1, 0
    np.testing.assert_allclose(c.fractions, [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(c.scores, [4, 1, -1, -1, 0], atol=1e-5)
    # trapezoid: 0.25 * ((4+1)/2 + (1-1)/2 + (-1-1)/2 + (-1+0)/2) = 0.25
    assert c.auc == pytest.approx(0.25, abs=1e-5)
    assert (c.kind, c.substrate, c.score, c.target) == ("deletion", "zero", "logit", 1)


def test_insertion_of_a_linear_model_by_hand(handle_of):
    weights = np.zeros((2, 2, 2))
    weights[..., 1] = [[3, 5], [-1, 2]]
    m = linear_handle(handle_of, weights)
    picture = np.array([[255, 0], [255, 255]], np.uint8)
    c = insertion(m, picture, np.array([[3.0, 0.0], [-1.0, 2.0]]), target=1, steps=4, substrate="zero", score="logit")
    # keep only the top n: 0, 3, 5, 5, 4; AUC = 0.25 * (1.5 + 4 + 5 + 4.5) = 3.75
    np.testing.assert_allclose(c.scores, [0, 3, 5, 5, 4], atol=1e-5)
    assert c.auc == pytest.approx(3.75, abs=1e-5)


@pytest.mark.parametrize("steps", [5, 36])
def test_deletion_curve_is_f_minus_the_top_k_contributions(handle_of, rng, steps):
    weights = rng.normal(size=(6, 6, 2))
    m = linear_handle(handle_of, weights, bias=(0.3, -0.7))
    picture = rng.integers(0, 256, (6, 6), dtype=np.uint8)
    x = picture.astype(np.float64) / 255.0
    contributions = weights[..., 0] * x  # the heatmap w * x
    c = deletion(m, picture, contributions, target=0, steps=steps, substrate="zero", score="logit")
    f = contributions.sum() + 0.3
    ordered = np.sort(contributions.ravel())[::-1]
    counts = np.rint(np.arange(steps + 1) * 36 / steps).astype(int)
    expected = np.array([f - ordered[:n].sum() for n in counts])
    np.testing.assert_allclose(c.scores, expected, atol=1e-4)
    by_hand = sum((counts[k + 1] - counts[k]) / 36 * (expected[k] + expected[k + 1]) / 2 for k in range(steps))
    assert c.auc == pytest.approx(by_hand, abs=1e-4)


def test_probability_score_is_the_softmax_of_the_logits(handle_of, rng):
    weights = rng.normal(size=(4, 4, 2))
    m = linear_handle(handle_of, weights)
    picture = rng.integers(0, 256, (4, 4), dtype=np.uint8)
    heat = rng.random((4, 4))
    logit = deletion(m, picture, heat, target=1, steps=4, score="logit")
    other = deletion(m, picture, heat, target=0, steps=4, score="logit")
    prob = deletion(m, picture, heat, target=1, steps=4, score="probability")
    np.testing.assert_allclose(prob.scores, 1 / (1 + np.exp(other.scores - logit.scores)), atol=1e-5)


def test_ranks_and_step_counts():
    np.testing.assert_array_equal(
        pixel_ranks(np.array([[0.1, 0.9], [0.5, 0.9]])), [[3, 0], [2, 1]]
    )  # ties: reading order
    np.testing.assert_array_equal(step_counts(10, 4), [0, 2, 5, 8, 10])
    assert auc(np.array([0, 0.5, 1]), np.array([1, 1, 0])) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="steps"):
        step_counts(10, 0)


def test_substrates(rng):
    pixels = rng.uniform(0, 255, (9, 8, 3)).astype(np.float32)
    assert not substrate_of(pixels, "zero").any()
    np.testing.assert_allclose(substrate_of(pixels, "mean")[3, 4], pixels.mean(axis=(0, 1)), rtol=1e-5)
    blurred = substrate_of(pixels, "blur")
    assert blurred.shape == pixels.shape and blurred.std() < pixels.std()
    with pytest.raises(ValueError, match="substrate"):
        substrate_of(pixels, "noise")


def test_top_1_default_and_picture_of_another_size(tiny, handle_of, rng):
    m = handle_of(tiny.conv_softmax())
    picture = rng.integers(0, 256, (20, 16, 3), dtype=np.uint8)  # the model takes 12 x 12
    heat = rng.random((20, 16))
    c = deletion(m, picture, heat, steps=10)
    assert c.target == int(np.argmax(m.predict(picture)[0]))
    assert c.scores[0] == pytest.approx(float(m.predict(picture)[0, c.target]), abs=1e-5)
    assert c.scores.shape == (11,) and 0 <= c.auc <= 1
    i = insertion(m, picture, heat, steps=10)
    assert i.substrate == "blur" and i.scores[-1] == pytest.approx(c.scores[0], abs=1e-5)


def spy_on_streams(monkeypatch) -> list[tuple[int, int | None]]:
    """Record (rows, batch_size) of every batched stream the metrics start, on either path of Plan.run."""
    import interpret.batching as batching

    seen = []
    original = batching.run_batched

    def spy(m_, count, run_batch, batch_size=None, *a, **k):
        seen.append((count, batch_size))
        return original(m_, count, run_batch, batch_size, *a, **k)

    monkeypatch.setattr(batching, "run_batched", spy)  # the NumPy path, through batched_logits
    monkeypatch.setattr(perturb_module, "run_batched", spy)  # the compiled path
    return seen


def test_copies_go_through_the_model_at_the_best_batch_size(tiny, handle_of, rng, monkeypatch):
    m = handle_of(tiny.conv_softmax())
    seen = spy_on_streams(monkeypatch)
    picture = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    deletion(m, picture, rng.random((12, 12)), target=0, steps=20)
    assert seen == [(21, None)]  # one stream; None = the handle's measured best batch size
    assert resolve_batch_size(m, None) >= 1
    deletion(m, rng.integers(0, 256, (15, 13, 3), dtype=np.uint8), rng.random((15, 13)), target=0, steps=20)
    assert seen[-1] == (21, None)  # the picture resized for the model: blended in NumPy, batched alike


def test_the_compiled_blend_equals_the_numpy_blend(tiny, handle_of, rng, monkeypatch):
    m = handle_of(tiny.conv_softmax(), preprocessing="-1..1")
    picture = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    heat = rng.random((12, 12))
    assert perturb_module.blends_commute(m)
    fast = deletion_insertion(m, picture, heat, target=1, steps=6, deletion_substrate="mean")
    monkeypatch.setattr(perturb_module, "blends_commute", lambda m: False)
    slow = deletion_insertion(m, picture, heat, target=1, steps=6, deletion_substrate="mean")
    for a, b in zip(fast, slow, strict=True):
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)


def test_a_preprocessing_that_mixes_pixels_takes_the_numpy_path(tiny, handle_of):
    from models.preprocessing import Preprocessing

    m = handle_of(tiny.conv_softmax())
    m.preprocessing = Preprocessing("standardise", "per-picture standardisation", lambda x: (x - x.mean()) / 64.0)
    assert not perturb_module.blends_commute(m)


def test_cancel_stops_between_batches(tiny, handle_of, rng):
    m = handle_of(tiny.conv_softmax())
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        deletion(
            m,
            rng.integers(0, 256, (12, 12, 3), dtype=np.uint8),
            rng.random((12, 12)),
            0,
            progress=Progress(None, cancel),
        )


def test_both_curves_from_one_stream_equal_the_separate_ones(tiny, handle_of, rng):
    m = handle_of(tiny.conv_softmax())
    picture = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    heat = rng.random((12, 12))
    d, i = deletion_insertion(m, picture, heat, target=2, steps=8)
    np.testing.assert_allclose(d.scores, deletion(m, picture, heat, target=2, steps=8).scores, atol=1e-6)
    np.testing.assert_allclose(i.scores, insertion(m, picture, heat, target=2, steps=8).scores, atol=1e-6)


def test_many_maps_each_with_its_own_class_in_one_stream(tiny, handle_of, rng, monkeypatch):
    m = handle_of(tiny.conv_softmax())
    picture = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    heats, targets = [rng.random((12, 12)) for _ in range(3)], [0, 2, 1]
    seen = spy_on_streams(monkeypatch)
    curves = deletion_insertion_maps(m, picture, heats, targets, steps=6)
    assert seen == [(3 * 2 * 7, None)]  # one stream for every copy of every map
    assert len(curves) == 3
    for (d, i), heat, t in zip(curves, heats, targets, strict=True):
        assert d.target == i.target == t
        np.testing.assert_allclose(d.scores, deletion(m, picture, heat, target=t, steps=6).scores, atol=1e-6)
        np.testing.assert_allclose(i.scores, insertion(m, picture, heat, target=t, steps=6).scores, atol=1e-6)
    assert deletion_insertion_maps(m, picture, [], []) == []
    with pytest.raises(ValueError, match="one target per map"):
        deletion_insertion_maps(m, picture, heats, [0])
