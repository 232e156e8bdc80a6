"""One model worker: a separate Python process that runs an uploaded model, with memory and time limits.

An uploaded model is checked before Keras reads it (``models.safety``), and then it is
still run away from the server: each upload is served by a worker, a fresh Python
process (``python -m serving.worker``) that loads the file and answers calls over its
stdin/stdout. The server only ever reads plain data back (``serving.wire``: JSON + NPZ,
no pickles), and the worker only runs functions registered in ``serving.tasks``, named
on the wire. A worker that uses more memory than ``CNN_LENS_WORKER_MAX_RSS_MB``, or takes
longer than ``CNN_LENS_WORKER_TIMEOUT_S`` for one call, is killed and the caller gets a
``WorkerKilled`` error whose message says why. ``serving.pool`` decides which worker
serves which upload.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interpret.images import ImageError
from interpret.progress import Cancelled
from models.errors import ModelLoadError, UnsafeModelError
from serving import wire

ROOT = Path(__file__).resolve().parent.parent
HEADER = struct.Struct(">Q")
MB = 1_000_000


class WorkerError(ValueError):
    """The worker could not run the call; the message says what happened."""


class WorkerKilled(WorkerError):
    """The worker ran past its memory or time limit and was stopped."""


@dataclass(frozen=True)
class WorkerLimits:
    """Per-worker caps; ``from_env`` reads the ``CNN_LENS_WORKER_*`` variables."""

    max_rss_bytes: int = 2_500 * MB
    call_timeout_s: float = 300.0
    load_timeout_s: float = 180.0
    max_calls: int = 500
    idle_s: float = 900.0
    max_message_bytes: int = 1_000 * MB
    address_space_bytes: int = 0  # RLIMIT_AS in the worker; 0 leaves it unlimited (see module notes)

    @classmethod
    def from_env(cls) -> WorkerLimits:
        def number(name: str, default: float) -> float:
            raw = os.environ.get(name, "").strip()
            try:
                return float(raw) if raw else float(default)
            except ValueError:
                raise ValueError(f"The environment variable {name}={raw!r} must be a number.") from None

        return cls(
            max_rss_bytes=int(number("CNN_LENS_WORKER_MAX_RSS_MB", cls.max_rss_bytes / MB) * MB),
            call_timeout_s=number("CNN_LENS_WORKER_TIMEOUT_S", cls.call_timeout_s),
            load_timeout_s=number("CNN_LENS_WORKER_LOAD_TIMEOUT_S", cls.load_timeout_s),
            max_calls=int(number("CNN_LENS_WORKER_MAX_CALLS", cls.max_calls)),
            idle_s=number("CNN_LENS_WORKER_IDLE_S", cls.idle_s),
            address_space_bytes=int(number("CNN_LENS_WORKER_MAX_VMEM_MB", 0) * MB),
        )


# ---------------------------------------------------------------------------------------------
# Framing: an 8-byte length, then a ``wire`` message.


def _write_frame(fd: int, message: Any) -> None:
    data = wire.encode(message)
    view = memoryview(HEADER.pack(len(data)) + data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_exact_blocking(fd: int, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError("the other side closed the pipe")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


# ---------------------------------------------------------------------------------------------
# The worker side: ``python -m serving.worker``.


def _describe(handle: Any) -> dict[str, Any]:
    return {
        "name": handle.name,
        "input_shape": [int(v) for v in handle.input_shape],
        "class_names": list(handle.class_names),
        "num_classes": int(handle.num_classes),
        "conv_layers": list(handle.conv_layers),
        "last_conv_layer": handle.last_conv_layer if handle.conv_layers else None,
        "head_kind": handle.head.kind,
        "parameters": int(handle.model.count_params()),
    }


def _error_message(exc: BaseException) -> dict[str, Any]:
    return {
        "type": "error",
        "cls": type(exc).__name__,
        "value_error": isinstance(exc, ValueError),
        "message": str(exc) or type(exc).__name__,
    }


def _limit_self(address_space: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if address_space > 0:
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))


CANCEL = threading.Event()  # set by SIGUSR1: the server's user superseded the running call


def _progress_reporter(out_fd: int) -> Callable[[float, str], None]:
    """Progress for a call in the worker: a frame to the server, and the cancellation point."""
    CANCEL.clear()

    def report(fraction: float, message: str = "") -> None:
        if CANCEL.is_set():
            raise Cancelled("superseded by a newer request")
        _write_frame(out_fd, {"type": "progress", "fraction": float(fraction), "message": str(message)})

    return report


def worker_main() -> None:
    """Serve one model: ``load`` once, then ``call`` requests until stdin closes."""
    out_fd = os.dup(1)
    os.dup2(2, 1)  # anything the model or TensorFlow prints goes to stderr, never into the protocol
    in_fd = os.dup(0)
    _limit_self(int(os.environ.get("CNN_LENS_WORKER_RLIMIT_AS", "0")))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    signal.signal(signal.SIGUSR1, lambda *_: CANCEL.set())
    handle = None
    while True:
        try:
            (length,) = HEADER.unpack(_read_exact_blocking(in_fd, HEADER.size))
            request = wire.decode(_read_exact_blocking(in_fd, length))
        except EOFError:
            return
        try:
            op = request.get("op")
            if op == "ping":
                _write_frame(out_fd, {"type": "result", "value": os.getpid()})
            elif op == "load":
                from models.upload import load_keras_file

                if handle is not None:  # this worker moves on to another upload: drop the old model
                    import gc

                    import keras

                    handle = None
                    keras.backend.clear_session()
                    gc.collect()
                handle = load_keras_file(
                    request["path"], request["class_names"], request["preprocessing"], name=request["name"]
                )
                _write_frame(out_fd, {"type": "result", "value": _describe(handle)})
            elif op == "call":
                if handle is None:
                    raise WorkerError("No model is loaded in this worker.")
                from serving.tasks import resolve

                fn = resolve(request["fn"])
                kwargs = dict(request["kwargs"])
                if request.get("progress"):
                    kwargs["progress"] = _progress_reporter(out_fd)
                _write_frame(out_fd, {"type": "result", "value": fn(handle, **kwargs)})
            else:
                raise WorkerError(f"Unknown request {op!r}.")
        except Exception as exc:
            try:
                _write_frame(out_fd, _error_message(exc))
            except wire.WireError as inner:
                _write_frame(out_fd, _error_message(inner))


# ---------------------------------------------------------------------------------------------
# The server side.


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


ERRORS: dict[str, type[ValueError]] = {"ModelLoadError": ModelLoadError, "UnsafeModelError": UnsafeModelError}


def _raise_remote(reply: dict[str, Any], what: str) -> None:
    cls_name, message = str(reply.get("cls")), str(reply.get("message"))
    if cls_name in ERRORS:
        raise ERRORS[cls_name](message)
    if cls_name == "ImageError":
        raise ImageError(message)
    if cls_name == "Cancelled":
        raise Cancelled(message)
    if reply.get("value_error"):
        raise ValueError(message)
    raise WorkerError(f"{what} failed in the model's worker process ({cls_name}: {message}).")


class Worker:
    """One worker process and the pipe to it; one call at a time."""

    def __init__(self, limits: WorkerLimits | None = None) -> None:
        self.limits = limits or WorkerLimits.from_env()
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
        env["CNN_LENS_WORKER_RLIMIT_AS"] = str(self.limits.address_space_bytes)
        self.cwd = tempfile.mkdtemp(prefix="cnn-lens-worker-")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "serving.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None if os.environ.get("CNN_LENS_WORKER_STDERR") else subprocess.DEVNULL,
            cwd=self.cwd,
            env=env,
            start_new_session=True,
        )
        self.calls = 0
        self.loads = 0
        self.model_key: str | None = None
        self.peak_rss = 0
        self.last_used = time.monotonic()
        self.lock = threading.Lock()  # held by the pool for a whole load + call

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                self.process.wait(timeout=10)
        for stream in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(Exception):
                stream.close()
        shutil.rmtree(self.cwd, ignore_errors=True)

    def _read_exact(self, n: int, deadline: float, what: str) -> bytes:
        fd = self.process.stdout.fileno()
        chunks, left = [], n
        while left:
            rss = _rss_bytes(self.pid)
            self.peak_rss = max(self.peak_rss, rss)
            if rss > self.limits.max_rss_bytes:
                self.kill()
                raise WorkerKilled(
                    f"{what} was stopped: the uploaded model used {rss / MB:.0f} MB of memory, more than the "
                    f"{self.limits.max_rss_bytes / MB:.0f} MB allowed (CNN_LENS_WORKER_MAX_RSS_MB). "
                    "Try a smaller model or fewer samples."
                )
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                self.kill()
                raise WorkerKilled(
                    f"{what} was stopped after {self.limits_for(what):.0f} s: the uploaded model took too long "
                    "(CNN_LENS_WORKER_TIMEOUT_S). Try fewer samples or a smaller model."
                )
            ready, _, _ = select.select([fd], [], [], min(timeout, 0.1))
            if not ready:
                continue
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                code = self.process.wait(timeout=10)
                self.kill()
                why = f"signal {-code}; it may have run out of memory" if code < 0 else f"exit code {code}"
                raise WorkerKilled(f"{what} failed: the model's worker process stopped ({why}).")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def limits_for(self, what: str) -> float:
        return self.limits.load_timeout_s if what.startswith("Loading") else self.limits.call_timeout_s

    def _cancel(self, deadline: float, what: str) -> None:
        """Ask the busy worker to stop at its next progress report, and wait for it (or kill it)."""
        try:
            os.kill(self.pid, signal.SIGUSR1)
            deadline = min(deadline, time.monotonic() + 30.0)
            while True:
                (length,) = HEADER.unpack(self._read_exact(HEADER.size, deadline, what))
                if length > self.limits.max_message_bytes:
                    raise WorkerError("answer too large")
                reply = wire.decode(self._read_exact(length, deadline, what))
                if not (isinstance(reply, dict) and reply.get("type") == "progress"):
                    return  # the call's end (its result or its Cancelled error): the worker is free again
        except (OSError, ValueError):
            self.kill()

    def request(self, message: dict[str, Any], what: str, progress: Callable[[float, str], None] | None = None) -> Any:
        """Send one request; relay progress frames; return the result or raise the worker's error.

        The caller holds ``self.lock``: one request at a time.
        """
        if not self.alive():
            raise WorkerKilled(f"{what} failed: the model's worker process is not running.")
        self.calls += 1
        self.last_used = time.monotonic()
        deadline = self.last_used + self.limits_for(what)
        try:
            _write_frame(self.process.stdin.fileno(), message)
        except (BrokenPipeError, OSError) as exc:
            self.kill()
            raise WorkerKilled(f"{what} failed: the model's worker process stopped.") from exc
        while True:
            (length,) = HEADER.unpack(self._read_exact(HEADER.size, deadline, what))
            if length > self.limits.max_message_bytes:
                self.kill()
                raise WorkerError(f"{what} failed: the worker's answer is {length / MB:.0f} MB, too large.")
            try:
                reply = wire.decode(self._read_exact(length, deadline, what))
            except wire.WireError:
                self.kill()
                raise
            if not isinstance(reply, dict):
                self.kill()
                raise WorkerError(f"{what} failed: the worker sent a malformed answer.")
            kind = reply.get("type")
            if kind == "progress":
                if progress is not None:
                    try:
                        progress(float(reply.get("fraction", 0.0)), str(reply.get("message", "")))
                    except Exception:
                        self._cancel(deadline, what)
                        raise
                continue
            self.last_used = time.monotonic()
            if kind == "result":
                return reply.get("value")
            if kind == "error":
                _raise_remote(reply, what)
            self.kill()
            raise WorkerError(f"{what} failed: the worker sent a malformed answer.")


if __name__ == "__main__":
    worker_main()
