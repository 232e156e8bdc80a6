"""Uploaded models run in a worker process: same answers, plain data back, limits enforced, memory bounded.

Each worker is a fresh Python process importing TensorFlow (several seconds here), so the
tests share pools where they can.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
from pathlib import Path

import hostile_models as hostile
import keras
import numpy as np
import pytest

from interpret import Explanation, explain
from models.errors import UnsafeModelError
from models.upload import load_keras_file
from serving import compute, jobs, tasks
from serving.pool import WorkerPool
from serving.worker import WorkerKilled, WorkerLimits

L = keras.layers


def _save(model: keras.Model, path: Path) -> bytes:
    model.save(path)
    return path.read_bytes()


def _tiny(seed: int, classes: int = 3) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((12, 12, 3)),
            L.Conv2D(4, 3, activation="relu", name="c1"),
            L.Conv2D(5, 3, activation="relu", name="c2"),
            L.GlobalAveragePooling2D(),
            L.Dense(classes, activation="softmax"),
        ]
    )


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory):
    p = WorkerPool(max_workers=2, max_models=3, limits=WorkerLimits(call_timeout_s=120, load_timeout_s=180))
    yield p
    p.close()


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("m") / "tiny.keras"
    _save(_tiny(0), path)
    return path


def _image() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 255, (20, 20, 3), dtype=np.uint8)


def test_results_match_the_in_process_model_and_nothing_is_unpickled(pool, tiny_file, monkeypatch) -> None:
    def tripwire(*args, **kwargs):
        raise AssertionError("the server unpickled something")

    monkeypatch.setattr(pickle, "loads", tripwire)
    monkeypatch.setattr(pickle, "load", tripwire)
    monkeypatch.setattr(pickle, "Unpickler", tripwire)
    remote = pool.load(tiny_file.read_bytes(), "tiny.keras", ["cat", "dog", "fox"])
    local = load_keras_file(tiny_file, ["cat", "dog", "fox"])
    assert remote.input_shape == (12, 12, 3) and remote.num_classes == 3
    assert remote.conv_layers == local.conv_layers == ["c1", "c2"]
    assert remote.class_names == ["cat", "dog", "fox"] and remote.source == "upload"
    image = _image()
    top = compute.run(remote, compute.top_k, image=image, k=3)
    expected = local.top_k(image, 3)
    assert [(i, n) for i, n, _ in top] == [(i, n) for i, n, _ in expected]
    np.testing.assert_allclose([p for *_, p in top], [p for *_, p in expected], rtol=1e-6)
    e = compute.run(remote, explain, image=image, method="gradcam", layer="c1")
    assert isinstance(e, Explanation) and e.layer == "c1" and e.heatmap.shape == (20, 20)
    np.testing.assert_allclose(e.heatmap, explain(local, image, method="gradcam", layer="c1").heatmap, atol=1e-6)
    reports: list[tuple[float, str]] = []
    compute.run(remote, explain, image=image, method="saliency", progress=lambda f, m: reports.append((f, m)))
    assert reports[0][0] == 0.0 and reports[-1][0] == 1.0 and "done" in reports[-1][1]


def test_library_errors_come_back_as_value_errors_with_their_message(pool, tiny_file) -> None:
    remote = pool.load(tiny_file.read_bytes(), "tiny.keras", ["cat", "dog", "fox"])
    with pytest.raises(ValueError, match="out of range"):
        compute.run(remote, explain, image=_image(), method="gradcam", target=9)
    with pytest.raises(tasks.UnknownTask, match="not a registered worker task"):
        compute.run(remote, os.getcwd)


def test_only_registered_tasks_can_be_shipped() -> None:
    assert tasks.task_name(explain) == "explain"
    assert tasks.task_name(tasks.top_k) == "top_k"
    assert tasks.resolve("explain") is explain
    for fn in (os.system, print, lambda m: m, dataclasses.replace, tasks.resolve):
        with pytest.raises(tasks.UnknownTask):
            tasks.task_name(fn)
    for name in ("os:system", "system", "eval", "interpret.core:explain", "resolve", "__class__", None, 3):
        with pytest.raises(tasks.UnknownTask):
            tasks.resolve(name)


def test_a_worker_refuses_a_task_name_that_is_not_registered(pool: WorkerPool, tiny_file: Path) -> None:
    remote = pool.load(tiny_file.read_bytes(), "tiny.keras", ["cat", "dog", "fox"])
    worker = pool._checkout(pool._entries[remote.key])
    try:
        with pytest.raises(ValueError, match="not allowed"):
            worker.request({"op": "call", "fn": "getcwd", "kwargs": {}}, "Running getcwd")
        assert worker.alive()  # a refused task leaves the worker idle and usable
    finally:
        pool._give_back(worker)


def test_a_hostile_upload_is_refused_before_any_worker_starts(tmp_path: Path) -> None:
    pool = WorkerPool(folder=tmp_path / "uploads")
    marker = tmp_path / "pwned"
    for case in ("top-level Lambda", "module os", "zip bomb", "traversal entry"):
        path = hostile.CASES[case](tmp_path, marker)
        with pytest.raises(UnsafeModelError, match="refused"):
            pool.load(path.read_bytes(), path.name)
    assert pool.started == 0 and pool.models() == [] and not marker.exists()
    assert list((tmp_path / "uploads").iterdir()) == []


def test_two_uploads_each_answer_with_their_own_model_and_workers_stay_bounded(tmp_path: Path) -> None:
    pool = WorkerPool(max_workers=1, max_models=2, folder=tmp_path / "uploads")
    try:
        a = pool.load(_save(_tiny(1, 2), tmp_path / "a.keras"), "a.keras", ["left", "right"])
        b = pool.load(_save(_tiny(2, 4), tmp_path / "b.keras"), "b.keras", ["n", "e", "s", "w"])
        assert len(pool.live_workers()) == 1
        assert {n for _, n, _ in compute.run(a, compute.top_k, image=_image(), k=2)} == {"left", "right"}
        assert len(pool.live_workers()) == 1
        assert {n for _, n, _ in compute.run(b, compute.top_k, image=_image(), k=4)} == {"n", "e", "s", "w"}
        c = pool.load(_save(_tiny(3, 2), tmp_path / "c.keras"), "c.keras", ["x", "y"])
        assert len(pool.models()) == 2 and len(pool.live_workers()) == 1
        assert len(list((tmp_path / "uploads").iterdir())) == 2  # a's file was removed
        with pytest.raises(ValueError, match="upload it again"):
            compute.run(a, compute.top_k, image=_image())
        assert c.class_names == ["x", "y"]
    finally:
        pool.close()
    assert not (tmp_path / "uploads").exists()


def test_a_worker_is_recycled_after_its_call_budget(tmp_path: Path, tiny_file: Path) -> None:
    pool = WorkerPool(limits=WorkerLimits(max_calls=2), folder=tmp_path / "uploads")
    try:
        m = pool.load(tiny_file.read_bytes(), "tiny.keras")
        first = pool.live_workers()[0].pid  # the load was its first call
        compute.run(m, compute.top_k, image=_image())
        assert pool.live_workers()[0].pid == first
        again = compute.run(m, compute.top_k, image=_image())
        assert pool.live_workers()[0].pid != first and pool.started == 2
        assert len(again) == 3
    finally:
        pool.close()


def test_a_model_that_runs_too_long_is_killed_and_the_user_told(tmp_path: Path) -> None:
    keras.utils.set_random_seed(0)
    slow = keras.Sequential(
        [
            keras.Input((384, 384, 3)),
            L.Conv2D(64, 7, padding="same", activation="relu"),
            L.Conv2D(64, 7, padding="same", activation="relu"),
            L.Conv2D(64, 7, padding="same", activation="relu"),
            L.GlobalAveragePooling2D(),
            L.Dense(2),
        ]
    )
    pool = WorkerPool(limits=WorkerLimits(call_timeout_s=1.0), folder=tmp_path / "uploads")
    try:
        m = pool.load(_save(slow, tmp_path / "slow.keras"), "slow.keras")
        worker = pool.live_workers()[0]
        with pytest.raises(WorkerKilled, match="took too long"):
            compute.run(m, explain, image=_image(), method="saliency")
        assert worker.process.poll() is not None  # the process is gone
        assert pool.live_workers() == []
    finally:
        pool.close()


def test_a_model_that_uses_too_much_memory_is_killed(tmp_path: Path) -> None:
    keras.utils.set_random_seed(0)
    big = keras.Sequential([keras.Input((8, 8, 1)), L.Flatten(), L.Dense(8000), L.Dense(8000), L.Dense(2)])
    data = _save(big, tmp_path / "big.keras")  # about 260 MB of weights
    pool = WorkerPool(limits=WorkerLimits(max_rss_bytes=700_000_000), folder=tmp_path / "uploads")
    try:
        with pytest.raises(WorkerKilled, match="MB of memory"):
            pool.load(data, "big.keras")
        assert pool.live_workers() == [] and pool.models() == []
    finally:
        pool.close()


def test_job_limit_refuses_with_a_busy_message() -> None:
    limiter = jobs.JobLimiter(max_jobs=2, wait_s=0.05)
    with limiter.slot(), limiter.slot():
        with pytest.raises(jobs.ServerBusy, match="busy.*try again"), limiter.slot("Grad-CAM"):
            pass
        assert limiter.running == 2
    with limiter.slot():
        assert limiter.running == 1
    assert limiter.peak == 2 and limiter.refused == 1
    assert issubclass(jobs.ServerBusy, ValueError)


def test_compute_run_takes_a_job_slot(monkeypatch: pytest.MonkeyPatch, tiny_file: Path) -> None:
    limiter = jobs.JobLimiter(max_jobs=1, wait_s=0.05)
    monkeypatch.setattr(jobs, "LIMITER", limiter)
    local = load_keras_file(tiny_file, ["cat", "dog", "fox"])
    assert len(compute.run(local, compute.top_k, image=_image(), k=2)) == 2
    with limiter.slot(), pytest.raises(jobs.ServerBusy, match="Top k was not started"):
        compute.run(local, compute.top_k, image=_image())


def test_every_page_function_runs_on_an_uploaded_model_and_matches_in_process(pool, tiny_file) -> None:
    """Each library function a page ships through compute.run gives, from the worker, what it gives here."""
    import importlib

    remote = pool.load(tiny_file.read_bytes(), "tiny.keras", ["cat", "dog", "fox"])
    local = load_keras_file(tiny_file, ["cat", "dog", "fox"])
    image = _image()
    calls = [
        ("interpret.activations", "feature_maps", {"image": image, "layer": "c2"}),
        ("interpret.receptive_field", "receptive_field_table", {}),
        ("interpret.receptive_field", "layer_receptive_field", {"layer": "c2"}),
        ("interpret.receptive_field", "model_summary", {}),
        ("interpret.compare", "default_targets", {"image": image, "k": 2}),
        ("interpret.compare", "compare", {"image": image, "methods": ["gradcam", "saliency"], "targets": [0, 1]}),
        ("interpret.filters", "filter_layers", {}),
        ("interpret.filters", "filter_bank", {"layer": "c1"}),
        ("interpret.feature_visualization", "target_units", {"layer": "c2"}),
        ("interpret.feature_visualization", "maximize_activation", {"layer": "c2", "unit": 1, "steps": 3}),
        ("interpret.top_patches", "top_patches", {"images": [image, image[::-1]], "layer": "c2", "channel": 0, "k": 2}),
    ]
    checked = 0
    for module, name, kwargs in calls:
        try:
            fn = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue  # a page's module that is not written yet
        here, there = fn(local, **kwargs), compute.run(remote, fn, **kwargs)
        assert type(there) is type(here), name
        _assert_same(here, there, name)
        checked += 1
    assert checked >= 5


def _assert_same(a, b, where: str) -> None:
    if dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            _assert_same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (np.ndarray, np.generic, float)):
        np.testing.assert_allclose(np.asarray(b, dtype=float), np.asarray(a, dtype=float), atol=1e-5, err_msg=where)
    else:
        assert a == b, where


def test_many_uploads_in_a_row_keep_workers_files_and_memory_bounded(tmp_path: Path) -> None:
    """One worker serves upload after upload (each replaces the last) and is replaced every 4 models."""
    from serving.worker import rss_bytes

    folder = tmp_path / "uploads"
    pool = WorkerPool(max_workers=1, max_models=3, max_loads=4, folder=folder)
    rss = []
    try:
        for i in range(10):
            m = pool.load(_save(_tiny(10 + i, 2), tmp_path / f"m{i}.keras"), f"m{i}.keras", [f"a{i}", f"b{i}"])
            top = compute.run(m, compute.top_k, image=_image(), k=2)
            assert {name for _, name, _ in top} == {f"a{i}", f"b{i}"}
            assert len(pool.live_workers()) == 1 and len(pool.models()) <= 3
            assert len(list(folder.iterdir())) <= 3
            rss.append(rss_bytes(pool.live_workers()[0].pid))
        assert pool.started == 3  # 10 models, at most 4 per worker process
        assert max(rss) < rss[0] + 300_000_000
    finally:
        pool.close()


def test_a_superseded_call_stops_in_the_worker_which_stays_alive(pool, tiny_file) -> None:
    import threading

    from interpret import Cancelled, Progress

    remote = pool.load(tiny_file.read_bytes(), "tiny.keras", ["cat", "dog", "fox"])
    compute.run(remote, compute.top_k, image=_image())
    (worker,) = [w for w in pool.live_workers() if w.model_key == remote.key]
    event = threading.Event()
    seen: list[float] = []

    def supersede_after_first(fraction: float, message: str) -> None:
        seen.append(fraction)
        event.set()  # a newer request arrived

    progress = Progress(supersede_after_first, cancel=event)
    with pytest.raises(Cancelled):
        compute.run(
            remote, explain, image=_image(), method="occlusion", patch=2, stride=1, batch_size=4, progress=progress
        )
    assert len(seen) == 1
    assert worker.alive() and worker.model_key == remote.key  # no restart: the worker stopped the call itself
    assert len(compute.run(remote, compute.top_k, image=_image(), k=2)) == 2
