"""Sessions sharing the worker pool never wait silently behind each other.

Two threads stand for two sessions on the same upload. One session's call hangs (its
worker is stopped with ``SIGSTOP``); the other gets its own worker when the cap allows,
else a clear "busy" answer within a couple of seconds. And the pool's lock is free while
an upload is checked, while a worker loads it, and while a call runs.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from pool_fixtures import *  # noqa: F403 (the fixtures image, long_call, model_bytes, uploads_folder)

from interpret import explain
from serving import compute, jobs
from serving.pool import WorkerPool
from serving.worker import WorkerKilled, WorkerLimits


class _Session(threading.Thread):
    """Runs one call in a thread, as a session's script thread would; keeps its outcome."""

    def __init__(self, fn) -> None:
        super().__init__(daemon=True)
        self.fn, self.result, self.error, self.ended = fn, None, None, None

    def run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as exc:
            self.error = exc
        self.ended = time.monotonic()


def _hang_a_call(pool: WorkerPool, model, image, long_call) -> tuple[_Session, int]:
    """Start a long call in a thread and stop its worker with SIGSTOP at the first report."""
    stopped: list[int] = []
    started = threading.Event()

    def progress(fraction: float, message: str) -> None:
        if not stopped:
            (w,) = [w for w in pool._workers if w.busy]
            stopped.append(w.pid)
            os.kill(w.pid, signal.SIGSTOP)
            started.set()

    session = _Session(lambda: compute.run(model, explain, image=image, progress=progress, **long_call))
    session.start()
    assert started.wait(60), "the long call never reported progress"
    return session, stopped[0]


def test_with_no_worker_to_spare_the_other_session_is_told_busy_at_once(
    model_bytes, image, long_call, uploads_folder, monkeypatch
) -> None:
    monkeypatch.delenv("CNN_LENS_WORKER_WAIT_S", raising=False)  # the default wait
    pool = WorkerPool(max_workers=1, folder=uploads_folder, limits=WorkerLimits(call_timeout_s=60))
    assert pool.wait_s <= 3
    try:
        m = pool.load(model_bytes["a"], "a.keras")
        hung, pid = _hang_a_call(pool, m, image, long_call)
        start = time.monotonic()
        with pytest.raises(jobs.ServerBusy, match="server is busy.*Running top k on a.keras was not started"):
            compute.run(m, compute.top_k, image=image)
        assert time.monotonic() - start < pool.wait_s + 1.5
        assert hung.is_alive() and pool.refused == 1
        os.kill(pid, signal.SIGKILL)  # end the hung call now rather than at its timeout
        hung.join(10)
        assert isinstance(hung.error, WorkerKilled)
        assert len(compute.run(m, compute.top_k, image=image, k=2)) == 2  # and then it works
    finally:
        pool.close()


def test_when_the_cap_allows_the_other_session_gets_its_own_worker(
    model_bytes, image, long_call, uploads_folder
) -> None:
    pool = WorkerPool(max_workers=2, folder=uploads_folder, limits=WorkerLimits(call_timeout_s=120))
    try:
        m = pool.load(model_bytes["a"], "a.keras")
        hung, pid = _hang_a_call(pool, m, image, long_call)
        other = _Session(lambda: compute.run(m, compute.top_k, image=image, k=2))
        other.start()
        other.join(60)  # a fresh worker: TensorFlow import and model load, never the hung call's timeout
        assert other.error is None and len(other.result) == 2
        assert hung.is_alive() and hung.ended is None  # answered while the first call still hangs
        assert {w.pid for w in pool.live_workers()} - {pid}
        os.kill(pid, signal.SIGKILL)
        hung.join(10)
        assert isinstance(hung.error, WorkerKilled)
        assert len(compute.run(m, compute.top_k, image=image, k=2)) == 2
    finally:
        pool.close()


def test_the_pool_lock_is_free_while_an_upload_is_checked_loaded_and_called(
    model_bytes, image, long_call, uploads_folder, monkeypatch
) -> None:
    import models.safety

    pool = WorkerPool(max_workers=2, folder=uploads_folder)
    checking = threading.Event()
    real_check = models.safety.check_config

    def slow_check(*args, **kwargs):
        checking.set()
        time.sleep(1.0)  # the check of a big config takes about this long at most
        return real_check(*args, **kwargs)

    def lock_is_free() -> bool:
        if not pool._lock.acquire(timeout=0.2):
            return False
        pool._lock.release()
        return True

    try:
        b = pool.load(model_bytes["b"], "b.keras")  # one worker holds b
        monkeypatch.setattr(models.safety, "check_config", slow_check)
        loading = _Session(lambda: pool.load(model_bytes["a"], "a.keras"))
        loading.start()
        assert checking.wait(30)
        assert lock_is_free()  # during the check
        while loading.is_alive() and not pool._starting and len(pool._workers) < 2:
            time.sleep(0.02)
        samples = []
        while loading.is_alive():  # during the second worker's start and load
            samples.append(lock_is_free())
            time.sleep(0.1)
        assert samples and all(samples)
        assert loading.error is None
        a = loading.result
        calling = _Session(lambda: compute.run(a, explain, image=image, **long_call))
        calling.start()
        time.sleep(0.5)
        assert calling.is_alive() and lock_is_free()  # during a call
        assert len(compute.run(b, compute.top_k, image=image, k=2)) == 2  # b's worker answers meanwhile
        calling.join(60)
        assert calling.error is None
    finally:
        pool.close()
