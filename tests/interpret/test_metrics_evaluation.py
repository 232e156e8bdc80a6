"""evaluate_picture / evaluate: one batched stream per picture, shared MuFidelity subsets, CIs, CSV + JSON, CLI."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from interpret.metrics import COLUMNS, evaluate, evaluate_picture, write_csv, write_json
from interpret.metrics.evaluation import mean_ci

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "assets" / "samples" / "fashion"


@pytest.fixture
def model(tiny, handle_of):
    return handle_of(tiny.conv_softmax(), class_names=["a", "b", "c"])


def pictures(rng, n=3):
    return [rng.integers(0, 256, (12, 12, 3), dtype=np.uint8) for _ in range(n)]


def test_one_stream_of_batches_for_every_map_and_one_shared_probe(model, rng, monkeypatch):
    from test_metrics_deletion_insertion import spy_on_streams

    seen = spy_on_streams(monkeypatch)
    methods = ["saliency", "gradcam", "random", "edge"]
    r = evaluate_picture(model, pictures(rng, 1)[0], methods, steps=5, samples=16)
    # per map: 6 deletion + 6 insertion + 1 explanation map; once per picture: MuFidelity's picture + 16 subsets
    assert seen == [(len(methods) * (6 + 6 + 1) + 1 + 16, None)]
    assert r.columns == ["deletion_auc", "insertion_auc", "average_drop", "increase_in_confidence", "mufidelity"]
    for name in methods:
        assert set(r.curves[name]) == {"deletion", "insertion"}
        assert all(np.isfinite(list(r.values[name].values())))
        assert r.values[name]["deletion_auc"] == pytest.approx(r.curves[name]["deletion"].auc)
    assert r.target == r.predicted and r.best("insertion_auc") and set(r.best("insertion_auc")) <= set(methods)
    assert set(r.explain_seconds) == set(methods) and r.score_seconds > 0


def test_a_method_that_does_not_apply_is_reported_not_raised(tiny, handle_of, rng):
    m = handle_of(tiny.dense_head())  # no conv layer, no global average pooling
    r = evaluate_picture(
        m, rng.integers(0, 256, (6, 6), dtype=np.uint8), ["cam", "saliency", "random"], steps=4, samples=8
    )
    assert "cam" in r.errors and np.isnan(r.values["cam"]["deletion_auc"])
    assert np.isfinite(r.values["saliency"]["deletion_auc"])


def test_evaluate_many_pictures(model, rng, tmp_path):
    images = pictures(rng)
    t = evaluate(model, images, labels=[0, 1, 2], methods=["gradcam", "random"], steps=4, samples=8, seed=5)
    assert t.values["deletion_auc"].shape == (2, 3)
    np.testing.assert_array_equal(t.targets, [0, 1, 2])  # labels are the targets
    alone = evaluate_picture(model, images[2], ["gradcam", "random"], target=2, steps=4, samples=8, seed=5 + 2)
    assert t.values["mufidelity"][1, 2] == pytest.approx(alone.values["random"]["mufidelity"])
    for s in t.summary():
        assert s.n == 3 and s.low <= s.mean <= s.high
    rows = list(csv.DictReader(write_csv(t, tmp_path / "t.csv").open()))
    assert len(rows) == 6 and {"image", "method", "target", "deletion_auc"} <= set(rows[0])
    report = json.loads(write_json(t, tmp_path / "t.json").read_text())
    assert report["columns"]["deletion_auc"]["higher_is_better"] is False
    assert report["columns"]["insertion_auc"]["higher_is_better"] is True
    assert len(report["summary"]) == 2 * len(t.columns)


def test_sanity_as_a_metric(model, rng):
    r = evaluate_picture(model, pictures(rng, 1)[0], ["gradcam", "edge"], metrics=["sanity"])
    assert r.columns == ["sanity_spearman_abs", "sanity_spearman", "sanity_ssim", "sanity_hog"]
    assert r.values["edge"]["sanity_spearman"] == pytest.approx(1.0)
    assert np.isfinite(r.values["gradcam"]["sanity_spearman"])


def test_mean_ci_and_columns():
    mean, low, high, n = mean_ci(np.array([1.0, 2.0, 3.0, np.nan]))
    assert (mean, n) == (2.0, 3)
    assert high - mean == pytest.approx(4.302652729911275 * 1.0 / np.sqrt(3))  # t(0.975, 2) * sd / sqrt(n)
    assert all(c.direction in ("higher is better", "lower is better") for c in COLUMNS.values())
    with pytest.raises(ValueError, match="metric"):
        evaluate(None, [np.zeros((2, 2))], metrics=["accuracy"])


@pytest.mark.slow  # a subprocess: imports TensorFlow
def test_command_writes_csv_and_json(tmp_path):
    out = tmp_path / "fashion"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, "-m", "cli", "evaluate", "--images", str(SAMPLES / "9_ankle-boot_1.png"),
         str(SAMPLES / "1_trouser_1.png"), "--methods", "gradcam,random,edge", "--steps", "5", "--samples", "16",
         "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "gradcam" in done.stdout and "lower is better" in done.stdout
    assert out.with_suffix(".csv").exists()
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["pictures"] == 2 and report["methods"] == ["gradcam", "random", "edge"]


def test_command_on_the_bundled_dataset_in_process(tmp_path, capsys):
    from interpret.evaluate import main
    from models.fashion_mnist_data import DEBIAN_DIR, load_fashion_mnist

    if not DEBIAN_DIR.exists():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    out = tmp_path / "fm"
    argv = ["--dataset", "fashion-mnist-test", "--limit", "3", "--offset", "2", "--methods", "gradcam,random"]
    assert main([*argv, "--steps", "4", "--samples", "8", "--out", str(out), "--quiet"]) == 0
    rows = list(csv.DictReader(out.with_suffix(".csv").open()))
    labels = load_fashion_mnist()[1][1][2:5]
    assert [int(r["label"]) for r in rows[::2]] == [int(v) for v in labels]  # recorded; the targets are top-1
    assert json.loads(out.with_suffix(".json").read_text())["settings"]["targets"] == "top-1"
    assert "gradcam" in capsys.readouterr().out
