"""Sanity check (Adebayo et al. 2018): a randomised copy, never the user's model; blocks; similarity measures."""

from __future__ import annotations

import threading
from pathlib import Path

import keras
import numpy as np
import pytest
from scipy import stats
from skimage.metrics import structural_similarity

from interpret import explain
from interpret.metrics import hog_similarity, sanity_check, spearman, ssim
from interpret.metrics.sanity import cached_copy, fans, randomisation_blocks, weighted_layers

L = keras.layers
SAMPLES = Path(__file__).resolve().parents[2] / "assets" / "samples" / "fashion"


def weights_of(model) -> list[bytes]:
    return [w.tobytes() for w in model.get_weights()]


def all_entries_differ(a: keras.Model, b: keras.Model) -> bool:
    return all(np.all(x != y) for x, y in zip(a.get_weights(), b.get_weights(), strict=True))


@pytest.fixture(scope="module")
def bundled():
    from models import load

    return load("fashion-mnist-cnn")


@pytest.fixture(scope="module")
def boot():
    from interpret.images import read_image

    return read_image(SAMPLES / "9_ankle-boot_1.png")


def test_cascading_on_the_bundled_model(bundled, boot):
    before = weights_of(bundled.model)
    heat_before = explain(bundled, boot, "gradcam").heatmap
    s = sanity_check(bundled, boot, "gradcam", mode="cascading")
    # logits downward, one step per block, each adding to what is random
    assert [step.block for step in s.steps] == ["predictions", "block3", "block2", "block1"]
    assert s.steps[0].randomised == ["predictions"]
    assert sorted(s.steps[-1].randomised) == sorted(p for p, _ in weighted_layers(bundled.model))
    # the user's model is bitwise unchanged, and explains as before
    assert weights_of(bundled.model) == before
    np.testing.assert_array_equal(explain(bundled, boot, "gradcam").heatmap, heat_before)
    # after the last step every weight of the copy differs from the original, its logits too
    copy = cached_copy(bundled)
    assert all_entries_differ(copy.model, bundled.model)
    assert not np.allclose(copy.logits(boot), bundled.logits(boot))
    # Grad-CAM depends on the weights (Adebayo et al.): its final rank correlation is low
    last = s.steps[-1]
    assert abs(last.spearman) < 0.5 and abs(last.spearman_abs) < 0.5
    assert s.passed
    assert last.heatmap.shape == boot.shape[:2] and s.original.shape == boot.shape[:2]


def test_a_second_check_starts_again_from_the_trained_weights(bundled, boot):
    first = sanity_check(bundled, boot, "saliency")
    second = sanity_check(bundled, boot, "saliency")
    for a, b in zip(first.steps, second.steps, strict=True):
        np.testing.assert_allclose(a.heatmap, b.heatmap, rtol=1e-4, atol=1e-6)  # same seed, same copy
        assert a.spearman == pytest.approx(b.spearman, abs=1e-4)


def test_independent_mode_randomises_one_block_at_a_time(bundled, boot):
    before = weights_of(bundled.model)
    s = sanity_check(bundled, boot, "gradcam", mode="independent")
    assert [step.randomised for step in s.steps][0] == ["predictions"]
    assert all(step.randomised == [p for p in step.randomised if p.startswith(step.block)] for step in s.steps)
    assert weights_of(bundled.model) == before
    assert weights_of(cached_copy(bundled).model) == before  # every block was put back after its step


def test_baselines_ignore_the_model(bundled, boot):
    s = sanity_check(bundled, boot, "edge")
    assert all(step.spearman == pytest.approx(1.0) for step in s.steps) and not s.passed


def test_nested_model_copy(tiny, handle_of, rng):
    model, base, _ = tiny.nested_sequential()
    m = handle_of(model)
    before = weights_of(model)
    picture = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    s = sanity_check(m, picture, "gradcam", layer="base/conv2", granularity="layer")
    assert [step.block for step in s.steps] == ["predictions", "base/conv2", "base/bn1", "base/conv1"]
    assert weights_of(model) == before
    assert all_entries_differ(cached_copy(m).model, model)
    assert s.layer == "base/conv2" and all(np.isfinite([st.spearman, st.ssim, st.hog]).all() for st in s.steps)


def mobilenet_like() -> keras.Model:
    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 3))
    x = L.Conv2D(4, 3, name="Conv1")(inp)
    x = L.BatchNormalization(name="bn_Conv1")(x)
    x = L.DepthwiseConv2D(3, name="expanded_conv_depthwise")(x)
    x = L.BatchNormalization(name="expanded_conv_depthwise_BN")(x)
    x = L.Conv2D(4, 1, name="expanded_conv_project")(x)
    x = L.BatchNormalization(name="expanded_conv_project_BN")(x)
    x = L.Conv2D(6, 1, name="block_1_expand")(x)
    x = L.BatchNormalization(name="block_1_expand_BN")(x)
    x = L.Conv2D(6, 1, name="block_2_expand")(x)
    x = L.Conv2D(8, 1, name="Conv_1")(x)
    x = L.BatchNormalization(name="Conv_1_bn")(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inp, L.Dense(3, activation="softmax", name="predictions")(x))


def test_blocks_follow_keras_applications_names():
    blocks = randomisation_blocks(mobilenet_like())
    assert [(b.name, len(b.paths)) for b in blocks] == [
        ("Conv1", 2),
        ("expanded_conv", 4),
        ("block_1", 2),
        ("block_2", 1),
        ("Conv_1", 2),
        ("predictions", 1),
    ]
    assert len(randomisation_blocks(mobilenet_like(), "layer")) == 12


def test_fans_match_keras():
    for shape in [(5, 7), (3, 3, 4, 8), (3, 3, 6, 1)]:
        limit = np.sqrt(6.0 / sum(fans(shape)))
        draw = keras.initializers.GlorotUniform(seed=0)(shape).numpy()
        assert np.abs(draw).max() <= limit + 1e-6 and np.abs(draw).max() > 0.9 * limit


# ---- similarity measures against their references -------------------------------------------
def fixed_maps():
    a = np.array([[0.0, 0.2, 0.9, 1.0], [0.3, 0.5, 0.1, 0.7], [0.8, 0.4, 0.6, 0.2], [0.1, 0.9, 0.3, 0.5]] * 2)
    b = np.array([[0.1, 0.3, 0.7, 1.0], [0.2, 0.6, 0.0, 0.9], [0.5, 0.5, 0.8, 0.1], [0.2, 0.7, 0.4, 0.3]] * 2)
    return np.tile(a, (1, 2)), np.tile(b, (1, 2))  # 8 x 8, each with min 0 and max 1


def test_spearman_and_ssim_equal_scipy_and_skimage():
    a, b = fixed_maps()
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a.ravel(), b.ravel()).statistic, abs=1e-12)
    assert ssim(a, b) == pytest.approx(structural_similarity(a, b, data_range=1.0), abs=1e-12)
    assert spearman(a, a) == pytest.approx(1.0) and ssim(a, a) == pytest.approx(1.0)
    assert spearman(a, np.zeros_like(a)) == 0.0  # a constant map has no ranking


def test_hog_similarity():
    rng = np.random.default_rng(0)
    a = rng.random((28, 28))
    assert hog_similarity(a, a) == pytest.approx(1.0)
    assert hog_similarity(a, 3 * a + 1) == pytest.approx(1.0)  # scaled to 0..1 first
    assert abs(hog_similarity(a, rng.random((28, 28)))) < 0.5
    assert hog_similarity(a, np.zeros_like(a)) == 0.0


def test_a_cancelled_check_stops_and_the_next_one_starts_clean(bundled, boot):
    from interpret import Cancelled, Progress

    cancel = threading.Event()
    calls = []

    def report(fraction, message):
        calls.append(fraction)
        if fraction >= 0.5:
            cancel.set()  # the user changed a choice mid-check

    with pytest.raises(Cancelled):
        sanity_check(bundled, boot, "gradcam", progress=Progress(report, cancel))
    clean = sanity_check(bundled, boot, "gradcam")
    again = sanity_check(bundled, boot, "gradcam")
    np.testing.assert_allclose(clean.steps[-1].heatmap, again.steps[-1].heatmap, rtol=1e-4, atol=1e-6)
