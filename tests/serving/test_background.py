"""Training jobs run in their own process: other sessions keep being served, and the rules hold."""

from __future__ import annotations

import time

import numpy as np
import pytest

import models
from interpret import explain
from models.training import TrainConfig
from serving import compute
from serving.background import BackgroundJobs, TrainingLimits, wait_until
from serving.jobs import ServerBusy

pytestmark = pytest.mark.slow
START_S = 240  # a fresh process imports TensorFlow and reads Fashion-MNIST on a busy 2-core CPU


def _picture() -> np.ndarray:
    from interpret.images import read_image
    from models.class_names import ASSETS

    return read_image(ASSETS / "samples" / "fashion" / "9_ankle-boot_1.png")


def _timed_explain(handle) -> float:
    started = time.perf_counter()
    e = compute.run(handle, explain, image=_picture(), method="gradcam")
    assert np.isfinite(e.heatmap).all()
    return time.perf_counter() - started


def test_explain_answers_while_training_runs_and_stop_keeps_the_model(capsys) -> None:
    jobs = BackgroundJobs(TrainingLimits(max_jobs=1, time_limit_s=600, grace_s=60))
    bundled = models.load("fashion-mnist-cnn")
    _timed_explain(bundled)  # compiled once, before the job, so the timing below is the request itself
    idle = min(_timed_explain(bundled) for _ in range(3))
    config = TrainConfig(max_train=30_000, max_test=300, epochs=20, early_stopping=False)
    job = jobs.start("session-a", config)
    try:
        assert wait_until(lambda: len(job.view().points) >= 2, START_S), job.view().message
        assert job.view().state == "running"

        # the rules: one job per session, and the server-wide cap for everyone else
        with pytest.raises(ValueError, match="already running"):
            jobs.start("session-a", config)
        with pytest.raises(ServerBusy, match="CNN_LENS_MAX_TRAINING_JOBS"):
            jobs.start("session-b", config)

        # another session's Explain request answers while the job trains
        busy = [_timed_explain(bundled) for _ in range(3)]
        assert job.view().state == "running", "the job should still be training"
        assert max(busy) < 30.0
        before = len(job.view().points)
        assert wait_until(lambda: len(job.view().points) > before, 60)  # the curve keeps growing
        with capsys.disabled():
            print(
                f"\nGrad-CAM on the bundled model: {idle * 1000:.0f} ms idle, "
                f"{np.median(busy) * 1000:.0f} ms (median of 3) while a training job runs"
            )

        # leaving the page and coming back: the session finds the same job
        assert jobs.get("session-a") is job
        jobs.stop("session-a")
        view = job.wait(START_S)
    finally:
        jobs.close()
    assert view.state == "finished", view.error
    outcome = view.outcome
    assert outcome.stop_reason == "stopped"
    assert outcome.model.source == "trained" and outcome.model.class_names[0] == "T-shirt/top"
    assert outcome.test_count == 300 and outcome.confusion.sum() == 300
    assert len(outcome.mistakes) == min(48, 300 - int(np.trace(outcome.confusion)))
    assert outcome.keras_bytes[:2] == b"PK"
    e = explain(outcome.model, _picture(), "gradcam")
    assert e.heatmap.shape == (28, 28)


def test_time_limit_stops_the_job_and_keeps_the_model_so_far() -> None:
    jobs = BackgroundJobs(TrainingLimits(max_jobs=1, time_limit_s=2, grace_s=START_S))
    try:
        job = jobs.start("s", TrainConfig(max_train=20_000, max_test=100, epochs=50, early_stopping=False))
        view = job.wait(START_S + 60)
    finally:
        jobs.close()
    assert view.state == "finished", view.error
    assert view.outcome.stop_reason == "time limit"
    assert "time limit" in view.message


def test_bad_data_fails_with_a_clear_message() -> None:
    jobs = BackgroundJobs(TrainingLimits(max_jobs=1))
    try:
        job = jobs.start("s", TrainConfig(data="/nonexistent/pictures.zip", epochs=1))
        view = job.wait(START_S)
    finally:
        jobs.close()
    assert view.state == "failed"
    assert "pictures.zip" in view.error


def test_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CNN_LENS_MAX_TRAINING_JOBS", "3")
    monkeypatch.setenv("CNN_LENS_TRAINING_TIME_LIMIT_S", "90")
    limits = TrainingLimits.from_env()
    assert limits.max_jobs == 3 and limits.time_limit_s == 90
    monkeypatch.setenv("CNN_LENS_MAX_TRAINING_JOBS", "many")
    with pytest.raises(ValueError, match="must be a number"):
        TrainingLimits.from_env()


def test_an_uploaded_zip_of_class_folders_trains_in_the_job(tmp_path) -> None:
    import io
    import zipfile

    from PIL import Image

    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for c, name in enumerate(["dark", "light"]):
            for i in range(10):
                picture = (rng.integers(0, 80, (24, 24, 3)) + 150 * c).astype(np.uint8)
                png = io.BytesIO()
                Image.fromarray(picture).save(png, "PNG")
                z.writestr(f"pictures/{name}/{i}.png", png.getvalue())
    jobs = BackgroundJobs(TrainingLimits(max_jobs=1))
    try:
        config = TrainConfig(data="upload.zip", image_size=16, filters=4, epochs=1, batch_size=4)
        view = jobs.start("s", config, data=buf.getvalue()).wait(START_S)
    finally:
        jobs.close()
    assert view.state == "finished", view.error
    assert view.outcome.class_names == ["dark", "light"] and view.outcome.model.input_shape == (16, 16, 3)
    assert view.outcome.test_count == 4
