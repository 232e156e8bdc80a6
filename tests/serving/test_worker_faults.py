"""A worker that dies, hangs or is interrupted never breaks its upload: the next request works.

Real worker processes and real signals, no mocks: ``kill -9`` in the middle of a call,
``SIGSTOP`` (a hung worker: the call times out with a clear message), a worker that exits
between calls (``SIGTERM``), and a progress callback that raises a ``BaseException`` (what
Streamlit's rerun does in the script thread). Each is followed by a successful call on the
same upload.
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
from pool_fixtures import *  # noqa: F403 (the fixtures image, long_call, model_bytes, uploads_folder)

from interpret import Explanation, explain
from serving import compute
from serving.pool import WorkerPool
from serving.worker import WorkerKilled, WorkerLimits


def _process_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def _only_worker(pool: WorkerPool) -> int:
    (w,) = pool.live_workers()
    return w.pid


def _signal_on_first_report(pool: WorkerPool, sig: signal.Signals):
    """A progress callback that sends ``sig`` to the (only) worker at its first report."""
    sent: list[int] = []

    def progress(fraction: float, message: str) -> None:
        if not sent:
            sent.append(_only_worker(pool))
            os.kill(sent[0], sig)

    return progress, sent


def _top_k_works(model, image: np.ndarray) -> None:
    top = compute.run(model, compute.top_k, image=image, k=2)
    assert isinstance(top, list) and len(top) == 2 and all(isinstance(name, str) for _, name, _ in top)


def test_kill_9_in_the_middle_of_a_call_is_reported_and_the_next_call_works(
    model_bytes, image, long_call, uploads_folder
) -> None:
    pool = WorkerPool(max_workers=1, folder=uploads_folder, limits=WorkerLimits(call_timeout_s=120))
    try:
        m = pool.load(model_bytes["a"], "a.keras")
        progress, killed = _signal_on_first_report(pool, signal.SIGKILL)
        start = time.monotonic()
        with pytest.raises(WorkerKilled, match=r"worker process stopped \(signal 9"):
            compute.run(m, explain, image=image, progress=progress, **long_call)
        assert time.monotonic() - start < 5  # said at once, not after a timeout
        assert pool.live_workers() == []
        _top_k_works(m, image)  # a fresh worker loaded the upload again
        assert _only_worker(pool) != killed[0] and pool.started == 2
        e = compute.run(m, explain, image=image, method="gradcam")
        assert isinstance(e, Explanation) and e.heatmap.shape == (48, 48)
    finally:
        pool.close()


def test_a_hung_worker_times_out_with_a_clear_message_and_the_next_call_works(
    model_bytes, image, long_call, uploads_folder
) -> None:
    pool = WorkerPool(max_workers=1, folder=uploads_folder, limits=WorkerLimits(call_timeout_s=3))
    try:
        m = pool.load(model_bytes["a"], "a.keras")
        progress, stopped = _signal_on_first_report(pool, signal.SIGSTOP)
        start = time.monotonic()
        with pytest.raises(WorkerKilled, match=r"stopped after 3 s: its worker process was paused"):
            compute.run(m, explain, image=image, progress=progress, **long_call)
        assert 2.5 < time.monotonic() - start < 10
        assert _process_gone(stopped[0]) and pool.live_workers() == []
        _top_k_works(m, image)
        assert _only_worker(pool) != stopped[0] and pool.started == 2
    finally:
        pool.close()


@pytest.mark.parametrize("wait_for_exit", [True, False], ids=["after-it-exited", "while-it-exits"])
def test_a_worker_that_exits_between_calls_is_replaced(model_bytes, image, uploads_folder, wait_for_exit) -> None:
    pool = WorkerPool(max_workers=1, folder=uploads_folder)
    try:
        m = pool.load(model_bytes["a"], "a.keras")
        _top_k_works(m, image)
        pid = _only_worker(pool)
        os.kill(pid, signal.SIGTERM)
        if wait_for_exit:
            deadline = time.monotonic() + 10
            while not _process_gone(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
        # Either the pool sees the dead worker, or the request finds it gone before it was read
        # and is sent once more to a fresh worker: the person never sees the dead one.
        _top_k_works(m, image)
        assert _only_worker(pool) != pid and pool.started == 2
    finally:
        pool.close()


class _Rerun(BaseException):
    """What Streamlit raises in the script thread when the person changes a widget mid-job."""


def test_a_base_exception_in_the_progress_callback_stops_the_call_and_keeps_the_worker_in_step(
    model_bytes, long_call, uploads_folder
) -> None:
    """Without this, the worker went on with the old call, the next request read the old call's
    answer, and a request frame bigger than the pipe buffer deadlocked server and worker."""
    pool = WorkerPool(max_workers=1, folder=uploads_folder)
    big = np.random.default_rng(2).integers(0, 255, (200, 200, 3), dtype=np.uint8)  # a 120 kB request frame
    try:
        m = pool.load(model_bytes["a"], "a.keras")
        pid = _only_worker(pool)
        reports = []

        def rerun_at_third_report(fraction: float, message: str) -> None:
            reports.append(fraction)
            if len(reports) == 3:
                raise _Rerun()

        start = time.monotonic()
        with pytest.raises(_Rerun):
            compute.run(m, explain, image=big, progress=rerun_at_third_report, **long_call)
        assert time.monotonic() - start < 10 and len(reports) == 3
        top = compute.run(m, compute.top_k, image=big, k=3)  # its own answer, not the old call's
        assert isinstance(top, list) and len(top) == 3
        e = compute.run(m, explain, image=big, method="saliency")
        assert isinstance(e, Explanation) and e.method == "saliency"
        assert _only_worker(pool) == pid  # the call was cancelled in the worker, not by killing it
    finally:
        pool.close()
