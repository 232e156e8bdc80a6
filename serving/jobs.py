"""A bounded number of heavy jobs at once, across every session of the server.

Each ``compute.run`` takes a slot. When all ``CNN_LENS_MAX_JOBS`` slots are busy, a new job
waits up to ``CNN_LENS_JOB_WAIT_S`` seconds for one, and then the person is told the
server is busy and to try again (``ServerBusy``, a ``ValueError``: the pages show it).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class ServerBusy(ValueError):
    """Every job slot is taken; the message asks the person to try again."""


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        return float(raw) if raw else default
    except ValueError:
        raise ValueError(f"The environment variable {name}={raw!r} must be a number.") from None


class JobLimiter:
    """A counting semaphore that refuses, with a clear message, instead of queueing forever."""

    def __init__(self, max_jobs: int | None = None, wait_s: float | None = None) -> None:
        jobs = max_jobs if max_jobs is not None else _env_number("CNN_LENS_MAX_JOBS", max(2, os.cpu_count() or 2))
        self.max_jobs = max(1, int(jobs))
        self.wait_s = max(0.0, wait_s if wait_s is not None else _env_number("CNN_LENS_JOB_WAIT_S", 10.0))
        self._slots = threading.BoundedSemaphore(self.max_jobs)
        self._lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.refused = 0

    @contextmanager
    def slot(self, what: str = "This job") -> Iterator[None]:
        if not self._slots.acquire(timeout=self.wait_s):
            with self._lock:
                self.refused += 1
            raise ServerBusy(
                f"The server is busy: {self.max_jobs} jobs are running for other people. "
                f"{what} was not started; try again in a moment."
            )
        with self._lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            yield
        finally:
            with self._lock:
                self.running -= 1
            self._slots.release()


LIMITER = JobLimiter()
