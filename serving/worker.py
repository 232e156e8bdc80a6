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

A worker is either idle (waiting on stdin) or running exactly one call, and the server
never leaves it in between: every request ends with its answer read, or with the call
cancelled and its end read (a superseded job, or any exception raised in the progress
callback, Streamlit's rerun included), or with the process killed. Writes to the worker
are non-blocking and bounded by the same deadline as reads, so a worker that stops reading
(hung, stopped with SIGSTOP) cannot block a server thread. A worker found dead before it
read a request raises ``WorkerGone``: the request never ran, and the pool sends it again
to a fresh worker.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
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
    """The worker ran past its memory or time limit, or died, and was stopped."""


class WorkerGone(WorkerKilled):
    """The worker had stopped before it read the request: nothing ran, so it is safe to send again."""


CANCEL_WAIT_S = 10.0  # how long a cancelled call may take to reach its next progress report


@dataclass(frozen=True)
class WorkerLimits:
    """Per-worker caps; ``from_env`` reads the ``CNN_LENS_WORKER_*`` variables."""

    max_rss_bytes: int = 4_000 * MB  # loading VGG16 (a 554 MB .keras) peaks near 3,000 MB
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


def rss_bytes(pid: int) -> int:
    """The resident memory of a process, in bytes (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _state(pid: int) -> str:
    """The process state letter from /proc (R, S, D, T for stopped, Z for zombie...), or '' if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


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
    """One worker process and the pipes to it; one request at a time (the pool hands it to one caller)."""

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
        os.set_blocking(self.process.stdin.fileno(), False)  # writes are bounded by a deadline too
        self.calls = 0
        self.loads = 0
        self.model_key: str | None = None
        self.peak_rss = 0
        self.last_used = time.monotonic()
        self.busy = False  # set and cleared by the pool, under its lock

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

    def limits_for(self, what: str) -> float:
        return self.limits.load_timeout_s if what.startswith("Loading") else self.limits.call_timeout_s

    def _unread_request_bytes(self) -> int:
        """Bytes of the request frame still in the pipe (the worker never read them); 0 if unknown."""
        try:
            buf = fcntl.ioctl(self.process.stdin.fileno(), termios.FIONREAD, b"\0\0\0\0")
            return struct.unpack("i", buf)[0]
        except (OSError, ValueError):
            return 0

    def _check_limits(self, deadline: float, what: str) -> float:
        """Kill the worker if it is over its memory or time limit; else the seconds left."""
        rss = rss_bytes(self.pid)
        self.peak_rss = max(self.peak_rss, rss)
        if rss > self.limits.max_rss_bytes:
            self.kill()
            raise WorkerKilled(
                f"{what} was stopped: the uploaded model used {rss / MB:.0f} MB of memory, more than the "
                f"{self.limits.max_rss_bytes / MB:.0f} MB allowed (CNN_LENS_WORKER_MAX_RSS_MB). "
                "Try a smaller model or fewer samples."
            )
        left = deadline - time.monotonic()
        if left <= 0:
            paused = _state(self.pid) in ("T", "t")
            self.kill()
            why = (
                "its worker process was paused (stopped by a signal) and did not answer"
                if paused
                else "the uploaded model took too long"
            )
            raise WorkerKilled(
                f"{what} was stopped after {self.limits_for(what):.0f} s: {why} (CNN_LENS_WORKER_TIMEOUT_S). "
                "The next request starts a fresh worker; try fewer samples or a smaller model."
            )
        return left

    def _died(self, what: str) -> WorkerKilled:
        """The worker closed its pipe: reap it, and say whether the request in flight ever reached it."""
        unread = self._unread_request_bytes()
        try:
            code = self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = None
        self.kill()
        if code is None:
            return WorkerKilled(f"{what} failed: the model's worker process closed its pipe and was stopped.")
        why = f"signal {-code}; it may have run out of memory" if code < 0 else f"exit code {code}"
        if unread > 0:
            return WorkerGone(f"{what} failed: the model's worker process had stopped ({why}).")
        return WorkerKilled(f"{what} failed: the model's worker process stopped ({why}).")

    def _send(self, data: bytes, deadline: float, what: str) -> None:
        fd = self.process.stdin.fileno()
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(fd, view) :]
                continue
            except BlockingIOError:
                pass
            except OSError:  # BrokenPipeError: the worker is gone, and cannot have run a partial request
                self.kill()
                raise WorkerGone(f"{what} failed: the model's worker process had stopped.") from None
            left = self._check_limits(deadline, what)
            select.select([], [fd], [], min(left, 0.1))

    def _read_exact(self, n: int, deadline: float, what: str) -> bytes:
        fd = self.process.stdout.fileno()
        chunks, left = [], n
        while left:
            timeout = self._check_limits(deadline, what)
            ready, _, _ = select.select([fd], [], [], min(timeout, 0.1))
            if not ready:
                continue
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                raise self._died(what)
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _read_reply(self, deadline: float, what: str) -> dict[str, Any]:
        (length,) = HEADER.unpack(self._read_exact(HEADER.size, deadline, what))
        if length > self.limits.max_message_bytes:
            self.kill()
            raise WorkerError(f"{what} failed: the worker's answer is {length / MB:.0f} MB, too large.")
        reply = wire.decode(self._read_exact(length, deadline, what))
        if not isinstance(reply, dict):
            self.kill()
            raise WorkerError(f"{what} failed: the worker sent a malformed answer.")
        return reply

    def _cancel(self, deadline: float, what: str) -> bool:
        """Ask the busy worker to stop at its next progress report and read up to the call's end.

        True when the worker is free again; False when it was killed instead.
        """
        try:
            os.kill(self.pid, signal.SIGUSR1)
            deadline = min(deadline, time.monotonic() + CANCEL_WAIT_S)
            while self._read_reply(deadline, what).get("type") == "progress":
                pass
            return True  # the call's end (its result or its Cancelled error)
        except BaseException:
            self.kill()
            return False

    def request(self, message: dict[str, Any], what: str, progress: Callable[[float, str], None] | None = None) -> Any:
        """Send one request; relay progress frames; return the result or raise the worker's error.

        The pool hands the worker to one caller at a time. Whatever happens here, the worker
        is left idle (its answer read) or killed, never in the middle of a call.
        """
        if not self.alive():
            self.kill()
            raise WorkerGone(f"{what} failed: the model's worker process had stopped.")
        self.calls += 1
        self.last_used = time.monotonic()
        deadline = self.last_used + self.limits_for(what)
        data = wire.encode(message)
        frame = HEADER.pack(len(data)) + data
        finished = False
        try:
            self._send(frame, deadline, what)
            while True:
                reply = self._read_reply(deadline, what)
                kind = reply.get("type")
                if kind == "progress":
                    if progress is not None:
                        try:
                            progress(float(reply.get("fraction", 0.0)), str(reply.get("message", "")))
                        except BaseException:  # Cancelled, Streamlit's rerun, anything: stop the call first
                            finished = self._cancel(deadline, what)
                            raise
                    continue
                finished = True
                self.last_used = time.monotonic()
                if kind == "result":
                    return reply.get("value")
                if kind == "error":
                    _raise_remote(reply, what)
                finished = False
                raise WorkerError(f"{what} failed: the worker sent a malformed answer.")
        finally:
            if not finished:
                self.kill()


if __name__ == "__main__":
    worker_main()
