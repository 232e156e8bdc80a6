"""The server's uploads and the worker processes that serve them.

``WorkerPool`` holds the uploads: at most ``CNN_LENS_MAX_UPLOADS`` files on disk and at
most ``CNN_LENS_MAX_WORKERS`` live workers (least recently used go first); a worker is
also recycled after ``CNN_LENS_WORKER_MAX_CALLS`` calls and when idle for
``CNN_LENS_WORKER_IDLE_S`` seconds. An ``UploadedModel`` is the server's light
description of one upload (name, input shape, class names, conv layers); its ``call``
sends a registered task (``serving.tasks``) by name to the upload's worker.
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.errors import ModelLoadError
from serving.tasks import task_name
from serving.worker import Worker, WorkerLimits


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


def upload_key(data: bytes, class_names: Sequence[str], preprocessing: str) -> str:
    h = hashlib.sha256(data)
    h.update(repr((tuple(class_names), preprocessing)).encode())
    return h.hexdigest()


def _safe_stem(filename: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(str(filename)).stem)[:60].strip("._")
    return stem or "model"


class WorkerPool:
    """Uploads kept on disk (LRU, ``max_models``), served by at most ``max_workers`` worker processes.

    A worker holds one model at a time. A call for another upload takes the least recently
    used idle worker and loads that upload into it (the old model is dropped). A worker is
    replaced by a fresh process after ``max_loads`` models or ``limits.max_calls`` calls,
    and stopped when idle for ``limits.idle_s``; so memory stays bounded however many
    files people upload.
    """

    def __init__(
        self,
        max_workers: int | None = None,
        max_models: int | None = None,
        limits: WorkerLimits | None = None,
        folder: str | Path | None = None,
        max_loads: int | None = None,
    ) -> None:
        self.max_workers = max(1, int(max_workers or os.environ.get("CNN_LENS_MAX_WORKERS", 2)))
        self.max_models = max(1, int(max_models or os.environ.get("CNN_LENS_MAX_UPLOADS", 16)))
        self.max_loads = max(1, int(max_loads or os.environ.get("CNN_LENS_WORKER_MAX_LOADS", 20)))
        self.limits = limits or WorkerLimits.from_env()
        self.folder = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="cnn-lens-uploads-"))
        self.folder.mkdir(parents=True, exist_ok=True)
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._workers: list[Worker] = []
        self._lock = threading.RLock()
        self.started = 0  # worker processes started so far (for tests and the load script)

    # -- bookkeeping -------------------------------------------------------------------------
    def live_workers(self) -> list[Worker]:
        with self._lock:
            return [w for w in self._workers if w.alive()]

    def models(self) -> list[str]:
        with self._lock:
            return list(self._entries)

    def _tidy(self) -> None:
        """Stop idle or dead workers and drop surplus uploads; called with the pool lock held."""
        now = time.monotonic()
        for w in list(self._workers):
            if w.lock.locked():
                continue
            if not w.alive() or now - w.last_used > self.limits.idle_s:
                w.kill()
                self._workers.remove(w)
        while len(self._entries) > self.max_models:
            _, entry = self._entries.popitem(last=False)
            shutil.rmtree(entry.path.parent, ignore_errors=True)

    def _spawn(self) -> Worker:
        w = Worker(self.limits)
        self.started += 1
        return w

    def _checkout(self, entry: _Entry) -> Worker:
        """A worker holding ``entry``'s model, its lock held by the caller from here on."""
        with self._lock:
            self._tidy()
            w = next((w for w in self._workers if w.model_key == entry.key and w.alive()), None)
            if w is None and len(self._workers) < self.max_workers:
                w = self._spawn()
                self._workers.append(w)
            if w is None:
                idle = [w for w in self._workers if not w.lock.locked()]
                w = min(idle or self._workers, key=lambda w: w.last_used)
        w.lock.acquire()
        try:
            stale = w.calls >= self.limits.max_calls or (w.model_key != entry.key and w.loads >= self.max_loads)
            if not w.alive() or stale:
                fresh = self._spawn()
                fresh.lock.acquire()
                with self._lock:
                    self._workers[self._workers.index(w)] = fresh
                w.kill()
                w.lock.release()
                w = fresh
            if w.model_key != entry.key:
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
        except BaseException:
            w.lock.release()
            with self._lock:
                self._tidy()
            raise
        return w

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
            if entry is not None and entry.info is not None:
                self._entries.move_to_end(key)
                return entry.info
            if entry is None:
                folder = self.folder / key[:24]
                folder.mkdir(parents=True, exist_ok=True)
                path = folder / f"{_safe_stem(filename)}.keras"
                path.write_bytes(data)
                try:
                    check_config(check_archive(path), Path(filename).name)
                except BaseException:
                    shutil.rmtree(folder, ignore_errors=True)
                    raise
                entry = _Entry(key, path, Path(filename).name, tuple(class_names), preprocessing)
                self._entries[key] = entry
        try:
            w = self._checkout(entry)
        except BaseException:
            with self._lock:
                if self._entries.get(key) is entry and entry.info is None:
                    del self._entries[key]
                    shutil.rmtree(entry.path.parent, ignore_errors=True)
            raise
        w.lock.release()
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
        what = task.replace("_", " ")
        w = self._checkout(entry)
        try:
            message = {"op": "call", "fn": task, "kwargs": kwargs, "progress": progress is not None}
            return w.request(message, f"Running {what} on {entry.filename}", progress)
        finally:
            w.lock.release()
            with self._lock:
                self._tidy()

    def close(self) -> None:
        with self._lock:
            for w in self._workers:
                w.kill()
            self._workers.clear()
            self._entries.clear()
        shutil.rmtree(self.folder, ignore_errors=True)
