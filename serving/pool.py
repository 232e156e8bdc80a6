"""The server's uploads and the worker processes that serve them.

``WorkerPool`` holds the uploads: at most ``CNN_LENS_MAX_UPLOADS`` files on disk and at
most ``CNN_LENS_MAX_WORKERS`` live workers (least recently used go first); a worker is
also recycled after ``CNN_LENS_WORKER_MAX_CALLS`` calls and when idle for
``CNN_LENS_WORKER_IDLE_S`` seconds. An ``UploadedModel`` is the server's light
description of one upload (name, input shape, class names, conv layers); its ``call``
sends a registered task (``serving.tasks``) by name to the upload's worker.

A worker serves one request at a time. A request takes an idle worker that holds its
model, else starts a new worker (while under the cap), else moves the least recently used
idle worker to its model; when every worker is busy it waits at most
``CNN_LENS_WORKER_WAIT_S`` seconds and then says the server is busy (``ServerBusy``), so a
session never queues behind another session's long or hung job. A worker that died or was
killed (time or memory limit, ``kill -9``, crash) is dropped, and the next request on that
upload loads it again in a fresh worker; a request whose worker had died before reading it
is sent once more, to a fresh worker. The pool's lock is only held for bookkeeping: the
upload check, starting a worker, loading a model and every call run outside it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.errors import ModelLoadError
from serving.jobs import ServerBusy
from serving.tasks import task_name
from serving.worker import Worker, WorkerGone, WorkerLimits


@dataclass(eq=False)
class UploadedModel:
    """The server's light description of an uploaded model; the model itself lives in a worker."""

    key: str
    name: str
    input_shape: tuple[int, int, int]
    class_names: list[str]
    num_classes: int
    conv_layers: list[str]
    last_conv_layer: str | None
    head_kind: str
    parameters: int
    pool: WorkerPool = field(repr=False)
    source: str = "upload"

    def call(self, fn: Callable[..., Any], /, **kwargs: Any) -> Any:
        """Run ``fn(handle, **kwargs)`` in the worker; ``progress`` (a callable) stays here and gets reports."""
        progress = kwargs.pop("progress", None)
        return self.pool.call(self.key, task_name(fn), kwargs, progress=progress)


@dataclass
class _Entry:
    key: str
    path: Path
    filename: str
    class_names: tuple[str, ...]
    preprocessing: str
    info: UploadedModel | None = None
    users: int = 0  # requests using the file now (it is not removed from disk while in use)


def upload_key(data: bytes, class_names: Sequence[str], preprocessing: str) -> str:
    h = hashlib.sha256(data)
    h.update(repr((tuple(class_names), preprocessing)).encode())
    return h.hexdigest()


def _safe_stem(filename: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(str(filename)).stem)[:60].strip("._")
    return stem or "model"


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        return float(raw) if raw else float(default)
    except ValueError:
        raise ValueError(f"The environment variable {name}={raw!r} must be a number.") from None


class WorkerPool:
    """Uploads kept on disk (LRU, ``max_models``), served by at most ``max_workers`` worker processes.

    A worker holds one model at a time. A call for another upload takes the least recently
    used idle worker and loads that upload into it (the old model is dropped). A worker is
    replaced by a fresh process after ``max_loads`` models or ``limits.max_calls`` calls,
    and stopped when idle for ``limits.idle_s``; so memory stays bounded however many
    files people upload. When every worker is busy, a request waits at most ``wait_s``
    seconds for one and then raises ``ServerBusy``.
    """

    def __init__(
        self,
        max_workers: int | None = None,
        max_models: int | None = None,
        limits: WorkerLimits | None = None,
        folder: str | Path | None = None,
        max_loads: int | None = None,
        wait_s: float | None = None,
    ) -> None:
        self.max_workers = max(1, int(max_workers or _env_number("CNN_LENS_MAX_WORKERS", 2)))
        self.max_models = max(1, int(max_models or _env_number("CNN_LENS_MAX_UPLOADS", 16)))
        self.max_loads = max(1, int(max_loads or _env_number("CNN_LENS_WORKER_MAX_LOADS", 20)))
        self.wait_s = max(0.0, wait_s if wait_s is not None else _env_number("CNN_LENS_WORKER_WAIT_S", 2.0))
        self.limits = limits or WorkerLimits.from_env()
        self.folder = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="cnn-lens-uploads-"))
        self.folder.mkdir(parents=True, exist_ok=True)
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._workers: list[Worker] = []
        self._starting = 0  # worker processes being started (they count towards max_workers)
        self._lock = threading.Lock()
        self._freed = threading.Condition(self._lock)  # notified whenever a worker is handed back
        self.started = 0  # worker processes started so far (for tests and the load script)
        self.refused = 0  # requests answered "busy"
        self.replaced = 0  # workers found dead or killed, and dropped

    # -- bookkeeping (called with the lock held) ---------------------------------------------
    def live_workers(self) -> list[Worker]:
        with self._lock:
            return [w for w in self._workers if w.alive()]

    def models(self) -> list[str]:
        with self._lock:
            return list(self._entries)

    def _drop_unusable(self) -> list[Worker]:
        """Take dead and long-idle workers out of the pool; the caller kills them outside the lock."""
        now = time.monotonic()
        out = [w for w in self._workers if not w.busy and (not w.alive() or now - w.last_used > self.limits.idle_s)]
        for w in out:
            self._workers.remove(w)
            self.replaced += not w.alive()
        return out

    def _drop_surplus_models(self) -> None:
        spare = [k for k, e in self._entries.items() if e.users == 0]
        while len(self._entries) > self.max_models and spare:
            entry = self._entries.pop(spare.pop(0))
            shutil.rmtree(entry.path.parent, ignore_errors=True)

    # -- handing workers out -----------------------------------------------------------------
    def _spawn(self) -> Worker:
        w = Worker(self.limits)
        w.busy = True
        with self._lock:
            self.started += 1
        return w

    def _reserve(self, entry: _Entry, what: str) -> Worker | None:
        """An idle worker marked busy for this caller, or None when a new one may be started.

        Waits at most ``wait_s`` for a worker to be handed back, then raises ``ServerBusy``.
        """
        deadline = time.monotonic() + self.wait_s
        doomed: list[Worker] = []
        try:
            with self._lock:
                while True:
                    doomed += self._drop_unusable()
                    idle = [w for w in self._workers if not w.busy]
                    same = [w for w in idle if w.model_key == entry.key]
                    if same:
                        w = max(same, key=lambda w: w.last_used)
                    elif len(self._workers) + self._starting < self.max_workers:
                        self._starting += 1
                        return None
                    elif idle:
                        w = min(idle, key=lambda w: w.last_used)
                    else:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            self.refused += 1
                            raise ServerBusy(
                                f"The server is busy: all {self.max_workers} model workers are running other "
                                f"people's jobs. {what} was not started; try again in a moment."
                            )
                        self._freed.wait(left)
                        continue
                    w.busy = True
                    return w
        finally:
            for w in doomed:
                w.kill()

    def _fresh(self, old: Worker | None) -> Worker:
        """Start a worker in ``old``'s place (or in a slot reserved by ``_reserve``)."""
        try:
            fresh = self._spawn()
        except BaseException:
            with self._lock:
                if old is not None:
                    self._workers.remove(old)
                else:
                    self._starting -= 1
                self._freed.notify_all()
            if old is not None:
                old.kill()
            raise
        with self._lock:
            if old is not None:
                self._workers[self._workers.index(old)] = fresh
            else:
                self._starting -= 1
                self._workers.append(fresh)
        if old is not None:
            old.kill()
        return fresh

    def _give_back(self, w: Worker) -> None:
        with self._lock:
            w.busy = False
            w.last_used = time.monotonic()
            dead = not w.alive()
            if dead and w in self._workers:
                self._workers.remove(w)
                self.replaced += 1
            self._freed.notify_all()
        if dead:
            w.kill()

    def _load_into(self, w: Worker, entry: _Entry) -> None:
        w.model_key = None
        info = w.request(
            {
                "op": "load",
                "path": str(entry.path),
                "class_names": list(entry.class_names),
                "preprocessing": entry.preprocessing,
                "name": _safe_stem(entry.filename),
            },
            f"Loading {entry.filename}",
        )
        w.model_key = entry.key
        w.loads += 1
        with self._lock:
            if entry.info is None:
                entry.info = UploadedModel(
                    key=entry.key,
                    name=str(info["name"]),
                    input_shape=tuple(int(v) for v in info["input_shape"]),
                    class_names=[str(c) for c in info["class_names"]],
                    num_classes=int(info["num_classes"]),
                    conv_layers=[str(c) for c in info["conv_layers"]],
                    last_conv_layer=info["last_conv_layer"],
                    head_kind=str(info["head_kind"]),
                    parameters=int(info["parameters"]),
                    pool=self,
                )

    def _checkout(self, entry: _Entry, what: str = "This job") -> Worker:
        """A worker holding ``entry``'s model, for this caller alone until ``_give_back``."""
        w = self._reserve(entry, what)
        try:
            if w is None:
                w = self._fresh(None)
            elif (
                not w.alive()
                or w.calls >= self.limits.max_calls
                or (w.model_key != entry.key and w.loads >= self.max_loads)
            ):
                w = self._fresh(w)
            if w.model_key != entry.key:
                self._load_into(w, entry)
        except BaseException:
            if w is not None:
                self._give_back(w)
            raise
        return w

    @contextmanager
    def _worker_for(self, entry: _Entry, what: str) -> Iterator[Worker]:
        w = self._checkout(entry, what)
        try:
            yield w
        finally:
            self._give_back(w)

    def _run(self, entry: _Entry, what: str, job: Callable[[Worker], Any]) -> Any:
        """``job(worker)``; sent once more to a fresh worker when the first had died before reading it.

        The caller counted itself in ``entry.users`` (so the file stays on disk); this ends that.
        """
        try:
            for attempt in range(2):
                try:
                    with self._worker_for(entry, what) as w:
                        return job(w)
                except WorkerGone:
                    if attempt:
                        raise
            raise AssertionError("unreachable")
        finally:
            with self._lock:
                entry.users -= 1
                self._drop_surplus_models()

    # -- public ------------------------------------------------------------------------------
    def load(
        self, data: bytes, filename: str, class_names: Sequence[str] = (), preprocessing: str = "0..1"
    ) -> UploadedModel:
        """Check an upload here (archive + config), then load it in a worker; cached by content."""
        from models.safety import check_archive, check_config, check_suffix

        check_suffix(Path(str(filename)))
        key = upload_key(data, class_names, preprocessing)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                if entry.info is not None:
                    return entry.info
                entry.users += 1
        if entry is None:
            # Written and checked outside the lock, in a folder of its own: other sessions go on.
            folder = Path(tempfile.mkdtemp(prefix=f"{key[:24]}-", dir=self.folder))
            path = folder / f"{_safe_stem(filename)}.keras"
            try:
                path.write_bytes(data)
                check_config(check_archive(path), Path(filename).name)
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            with self._lock:
                entry = self._entries.get(key)
                if entry is None:
                    entry = _Entry(key, path, Path(filename).name, tuple(class_names), preprocessing)
                    self._entries[key] = entry
                    folder = None
                entry.users += 1
            if folder is not None:  # another session registered the same upload meanwhile
                shutil.rmtree(folder, ignore_errors=True)
        try:
            self._run(entry, f"Loading {Path(filename).name}", lambda w: None)
        except BaseException:
            with self._lock:
                if self._entries.get(key) is entry and entry.info is None and entry.users == 0:
                    del self._entries[key]
                    shutil.rmtree(entry.path.parent, ignore_errors=True)
            raise
        assert entry.info is not None
        return entry.info

    def call(
        self,
        key: str,
        task: str,
        kwargs: dict[str, Any],
        progress: Callable[[float, str], None] | None = None,
    ) -> Any:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                raise ModelLoadError("This uploaded model was cleared from the server to make room; upload it again.")
            self._entries.move_to_end(key)
            entry.users += 1
        what = f"Running {task.replace('_', ' ')} on {entry.filename}"
        message = {"op": "call", "fn": task, "kwargs": kwargs, "progress": progress is not None}
        return self._run(entry, what, lambda w: w.request(message, what, progress))

    def close(self) -> None:
        with self._lock:
            workers, self._workers = list(self._workers), []
            self._entries.clear()
        for w in workers:
            w.kill()
        shutil.rmtree(self.folder, ignore_errors=True)
