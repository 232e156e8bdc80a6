"""Background jobs of the serving layer: training a CNN away from every page's script run.

A training job runs ``models.training.train`` in **its own process** (``python -m
serving.background JOB.json``), not in a thread of the server. Why a process:

- **Other sessions stay responsive.** TensorFlow runs every op of a process on one shared
  pair of thread pools; a training thread would queue its convolutions in the same pools as
  another person's Grad-CAM. A separate process has its own pools, and it runs at a lower
  scheduling priority (``os.nice``, ``CNN_LENS_TRAINING_NICE``), so the kernel gives the
  server's interactive requests the CPU first (``tests/serving/test_background.py`` times an
  Explain request while a job trains).
- **Limits can be enforced.** A thread cannot be killed; a process can, past its time limit
  or its memory cap, and a crash (out of memory, a TensorFlow abort) takes only the job down.
- **Seeds and Keras state stay private.** ``train`` seeds Python, NumPy and TensorFlow
  globally and builds models in its own Keras session.
- **Uploaded datasets are decoded there**, not in the server.

The cost is the start of a Python process with TensorFlow (a few seconds), small next to a
training run. The job reports JSON lines on its stdout (``TrainEvent``s, at most a few per
second, and every epoch); the server reads them in a thread and keeps the curve points. At
the end the job writes the model (``model.keras``) and the results (``result.json``,
``result.npz``); the server loads the model through the same checks as an upload
(``models.upload.load_keras_file``) and holds it as a ``ModelHandle``.

The rules (``BackgroundJobs``, one per server: ``JOBS``):

- one job per session (keyed by the Streamlit session id, so leaving the page and coming
  back finds the same job);
- at most ``CNN_LENS_MAX_TRAINING_JOBS`` running at once across the server; past that
  ``start`` raises ``ServerBusy`` (a ``ValueError`` the page shows);
- ``CNN_LENS_TRAINING_TIME_LIMIT_S``: the job stops itself after that long (the model so far
  is evaluated and kept), and is killed ``CNN_LENS_TRAINING_GRACE_S`` later if it has not
  finished; ``CNN_LENS_TRAINING_MAX_RSS_MB``: killed past that much memory;
- ``stop``: the job stops after its current batch (SIGUSR1), is evaluated and kept;
- finished jobs are kept ``CNN_LENS_TRAINING_KEEP_S`` seconds after they end.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.training import TrainConfig, TrainEvent
from serving.jobs import ServerBusy
from serving.worker import rss_bytes

ROOT = Path(__file__).resolve().parent.parent
MB = 1_000_000
ACTIVE = ("starting", "running", "stopping")
MAX_MISTAKES = 48  # misclassified test pictures kept for the page
EVENT_INTERVAL_S = 0.25  # the child sends at most ~4 batch events a second (every epoch end too)
MAX_POINTS = 4000  # curve points kept per job


def _number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        return float(raw) if raw else float(default)
    except ValueError:
        raise ValueError(f"The environment variable {name}={raw!r} must be a number.") from None


@dataclass(frozen=True)
class TrainingLimits:
    """Server-wide caps on training jobs; ``from_env`` reads the ``CNN_LENS_TRAINING_*`` variables."""

    max_jobs: int = 1
    time_limit_s: float = 1800.0
    grace_s: float = 120.0
    max_rss_bytes: int = 6_000 * MB
    nice: int = 10
    keep_s: float = 7200.0

    @classmethod
    def from_env(cls) -> TrainingLimits:
        default_jobs = max(1, (os.cpu_count() or 2) // 2)
        return cls(
            max_jobs=max(1, int(_number("CNN_LENS_MAX_TRAINING_JOBS", default_jobs))),
            time_limit_s=max(1.0, _number("CNN_LENS_TRAINING_TIME_LIMIT_S", cls.time_limit_s)),
            grace_s=max(1.0, _number("CNN_LENS_TRAINING_GRACE_S", cls.grace_s)),
            max_rss_bytes=int(_number("CNN_LENS_TRAINING_MAX_RSS_MB", cls.max_rss_bytes / MB) * MB),
            nice=int(_number("CNN_LENS_TRAINING_NICE", cls.nice)),
            keep_s=_number("CNN_LENS_TRAINING_KEEP_S", cls.keep_s),
        )


@dataclass
class Mistake:
    """One misclassified test picture."""

    image: np.ndarray  # uint8 (H, W, C), as in the test set
    true: int
    predicted: int
    confidence: float
    index: int  # in the test set


@dataclass
class TrainingOutcome:
    """What a finished job gives the page: the model handle and everything measured on the test set."""

    model: Any  # models.ModelHandle, source "trained"
    keras_bytes: bytes = field(repr=False)
    history: dict[str, list[float]]
    test_accuracy: float
    per_class_accuracy: list[float]
    confusion: np.ndarray
    class_names: list[str]
    test_count: int
    mistakes: list[Mistake]
    epochs_run: int
    epoch_seconds: list[float]
    seconds: float
    stop_reason: str
    parameters: int
    data_source: str
    config: TrainConfig
    digest: str  # SHA-256 of keras_bytes: a stable key for the sidebar and the result caches


@dataclass
class JobView:
    """A consistent copy of a job's state for one page run."""

    id: str
    session: str
    state: str  # "starting" | "running" | "stopping" | "finished" | "failed"
    message: str
    error: str
    config: TrainConfig
    started: float  # time.time()
    ended: float | None
    points: list[dict[str, float]]  # per batch: position (epochs, fractional), loss, accuracy
    epochs: list[dict[str, Any]]  # per finished epoch: the epoch event as a dict
    last: dict[str, Any] | None  # the latest event
    outcome: TrainingOutcome | None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def elapsed_s(self) -> float:
        return (self.ended or time.time()) - self.started


class TrainingJob:
    """One training run in its own process; the server's threads follow it."""

    def __init__(self, session: str, config: TrainConfig, limits: TrainingLimits, data: bytes | None = None) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.session = session
        self.config = config
        self.limits = limits
        self.folder = Path(tempfile.mkdtemp(prefix=f"cnn-lens-train-{self.id}-"))
        self.state = "starting"
        self.message = "Starting the training process..."
        self.error = ""
        self.started = time.time()
        self.ended: float | None = None
        self.points: list[dict[str, float]] = []
        self.epochs: list[dict[str, Any]] = []
        self.last: dict[str, Any] | None = None
        self.outcome: TrainingOutcome | None = None
        self._lock = threading.Lock()
        self._stop_sent: float | None = None
        self._ready = False  # the process has installed its Stop handler
        self._killed_why = ""
        run_config = config.to_dict()
        if data is not None:
            path = self.folder / "data.zip"
            path.write_bytes(data)
            run_config["data"] = str(path)
        spec = {"config": run_config, "time_limit_s": limits.time_limit_s, "nice": limits.nice}
        (self.folder / "job.json").write_text(json.dumps(spec))
        self._log = open(self.folder / "job.log", "wb")  # noqa: SIM115 (closed when the process ends)
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": path}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "serving.background", str(self.folder / "job.json")],
            cwd=str(ROOT),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, name=f"train-{self.id}-reader", daemon=True)
        self._watch = threading.Thread(target=self._watchdog, name=f"train-{self.id}-watchdog", daemon=True)
        self._reader.start()
        self._watch.start()

    # -- following the process -------------------------------------------------------------
    def _read(self) -> None:
        assert self.proc.stdout is not None
        result: dict[str, Any] | None = None
        failure = ""
        for raw in self.proc.stdout:
            try:
                msg = json.loads(raw)
            except ValueError:
                continue
            kind = msg.get("type")
            if kind == "ready":
                with self._lock:
                    self._ready = True
                    stop_now = self._stop_sent is not None
                if stop_now:  # Stop was pressed while the process was starting
                    self._signal_stop()
            elif kind == "event":
                self._on_event(msg["event"])
            elif kind == "result":
                result = msg
            elif kind == "error":
                failure = str(msg.get("message") or "Training failed.")
        self.proc.wait()
        self._log.close()
        outcome, error = None, failure
        if result is not None and not failure:
            try:
                outcome = self._load_outcome(result)
            except Exception as exc:  # the model file could not be read back: say so, keep serving
                error = f"The trained model could not be loaded: {exc}"
        if outcome is None and not error:
            error = self._killed_why or self._crash_message()
        with self._lock:
            self.outcome = outcome
            self.error = error
            self.state = "finished" if outcome is not None else "failed"
            self.message = self._end_message(outcome) if outcome is not None else error
            self.ended = time.time()

    def _crash_message(self) -> str:
        code = self.proc.returncode
        tail = ""
        try:
            lines = (self.folder / "job.log").read_text(errors="replace").strip().splitlines()
            tail = next((line for line in reversed(lines) if line.strip() and not line.startswith(" ")), "")
        except OSError:
            pass
        return f"The training process ended unexpectedly (exit code {code}). {tail[:300]}".strip()

    @staticmethod
    def _end_message(outcome: TrainingOutcome) -> str:
        why = {
            "stopped": "stopped by you",
            "time limit": "stopped at the server's time limit",
            "early stopping": "early stopping on the validation loss",
        }.get(outcome.stop_reason, "")
        return f"Trained {outcome.epochs_run} epoch(s){' (' + why + ')' if why else ''}: test accuracy {outcome.test_accuracy:.1%}."

    def _on_event(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.last = event
            if self.state == "starting" and event.get("kind") in ("batch", "epoch"):
                self.state = "running"
            if event.get("message"):
                self.message = str(event["message"])
            elif event.get("kind") == "batch":
                self.message = "Training..."
            if event.get("kind") in ("batch", "epoch") and event.get("loss") is not None:
                batches = max(1, int(event.get("batches") or 1))
                position = int(event.get("epoch", 0)) + int(event.get("batch", 0)) / batches
                self.points.append(
                    {"position": position, "loss": float(event["loss"]), "accuracy": float(event.get("accuracy") or 0)}
                )
                if len(self.points) > MAX_POINTS:
                    self.points = self.points[::2]
            if event.get("kind") == "epoch":
                self.epochs.append(dict(event))

    def _watchdog(self) -> None:
        hard = self.limits.time_limit_s + self.limits.grace_s
        while self.proc.poll() is None:
            elapsed = time.time() - self.started
            rss = rss_bytes(self.proc.pid)
            if rss > self.limits.max_rss_bytes:
                self._kill(
                    f"Training was stopped: it used {rss / MB:.0f} MB of memory, more than the server allows "
                    f"({self.limits.max_rss_bytes / MB:.0f} MB, CNN_LENS_TRAINING_MAX_RSS_MB). Use fewer or smaller "
                    "pictures, a smaller batch or a smaller model."
                )
            elif elapsed > hard:
                self._kill(
                    f"Training was stopped after {elapsed:.0f} s: past the server's time limit "
                    f"({self.limits.time_limit_s:.0f} s, CNN_LENS_TRAINING_TIME_LIMIT_S) it did not finish in time."
                )
            elif self._stop_sent is not None and time.time() - self._stop_sent > self.limits.grace_s:
                self._kill("Training did not stop in time after Stop and was ended; nothing was kept.")
            time.sleep(0.2)

    def _kill(self, why: str) -> None:
        self._killed_why = why
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            self.proc.kill()

    def _load_outcome(self, result: dict[str, Any]) -> TrainingOutcome:
        import hashlib

        from models.upload import load_keras_file

        meta = json.loads((self.folder / "result.json").read_text())
        model_path = self.folder / "model.keras"
        keras_bytes = model_path.read_bytes()
        handle = load_keras_file(model_path, meta["class_names"], "0..1", name=meta["name"])
        handle.source = "trained"
        with np.load(self.folder / "result.npz", allow_pickle=False) as npz:
            images, true, predicted = npz["mistake_images"], npz["mistake_true"], npz["mistake_predicted"]
            confidence, index = npz["mistake_confidence"], npz["mistake_index"]
            confusion = npz["confusion"]
        mistakes = [
            Mistake(images[i], int(true[i]), int(predicted[i]), float(confidence[i]), int(index[i]))
            for i in range(len(true))
        ]
        return TrainingOutcome(
            model=handle,
            keras_bytes=keras_bytes,
            history=meta["history"],
            test_accuracy=float(meta["test_accuracy"]),
            per_class_accuracy=[float(v) for v in meta["per_class_accuracy"]],
            confusion=confusion,
            class_names=list(meta["class_names"]),
            test_count=int(meta["test_count"]),
            mistakes=mistakes,
            epochs_run=int(meta["epochs_run"]),
            epoch_seconds=[float(v) for v in meta["epoch_seconds"]],
            seconds=float(meta["seconds"]),
            stop_reason=str(meta["stop_reason"]),
            parameters=int(meta["parameters"]),
            data_source=str(meta["data_source"]),
            config=self.config,
            digest=hashlib.sha256(keras_bytes).hexdigest(),
        )

    # -- what the server asks --------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def view(self) -> JobView:
        with self._lock:
            return JobView(
                id=self.id,
                session=self.session,
                state=self.state,
                message=self.message,
                error=self.error,
                config=self.config,
                started=self.started,
                ended=self.ended,
                points=list(self.points),
                epochs=list(self.epochs),
                last=dict(self.last) if self.last else None,
                outcome=self.outcome,
            )

    def stop(self) -> None:
        """Ask the job to stop after its current batch; the model so far is evaluated and kept."""
        with self._lock:
            if self.state not in ACTIVE or self._stop_sent is not None:
                return
            self._stop_sent = time.time()
            self.state = "stopping"
            self.message = "Stopping after this batch, then testing the model so far..."
            ready = self._ready
        if ready:
            self._signal_stop()

    def _signal_stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGUSR1)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self._kill("Training was cancelled.")
        self._reader.join(timeout=10)

    def wait(self, timeout: float | None = None) -> JobView:
        self._reader.join(timeout)
        return self.view()

    def cleanup(self) -> None:
        self.kill()
        shutil.rmtree(self.folder, ignore_errors=True)


class BackgroundJobs:
    """The server's training jobs: one per session, at most ``limits.max_jobs`` running at once."""

    def __init__(self, limits: TrainingLimits | None = None) -> None:
        self._limits = limits
        self._jobs: dict[str, TrainingJob] = {}
        self._lock = threading.Lock()

    @property
    def limits(self) -> TrainingLimits:
        return self._limits or TrainingLimits.from_env()

    def _tidy(self) -> None:
        """Drop jobs that ended more than ``keep_s`` ago (called with the lock held)."""
        now = time.time()
        keep = self.limits.keep_s
        for session, job in list(self._jobs.items()):
            if job.ended is not None and now - job.ended > keep:
                del self._jobs[session]
                job.cleanup()

    def running(self) -> int:
        with self._lock:
            return sum(job.active for job in self._jobs.values())

    def start(self, session: str, config: TrainConfig, data: bytes | None = None) -> TrainingJob:
        """Start training for ``session``; ``data`` is an uploaded zip of class folders (``config.data`` then ignored)."""
        config.check()
        limits = self.limits
        with self._lock:
            self._tidy()
            old = self._jobs.get(session)
            if old is not None and old.active:
                raise ValueError("A training job of yours is already running; stop it before starting another.")
            running = sum(job.active for job in self._jobs.values())
            if running >= limits.max_jobs:
                raise ServerBusy(
                    f"The server is busy: {running} training job{'s are' if running != 1 else ' is'} running for "
                    f"other people (the limit is {limits.max_jobs}, CNN_LENS_MAX_TRAINING_JOBS). Try again when "
                    "one has finished."
                )
            job = TrainingJob(session, config, limits, data)
            self._jobs[session] = job
        if old is not None:
            old.cleanup()
        return job

    def get(self, session: str) -> TrainingJob | None:
        with self._lock:
            return self._jobs.get(session)

    def stop(self, session: str) -> None:
        job = self.get(session)
        if job is not None:
            job.stop()

    def forget(self, session: str) -> None:
        with self._lock:
            job = self._jobs.pop(session, None)
        if job is not None:
            job.cleanup()

    def close(self) -> None:
        with self._lock:
            jobs = list(self._jobs.values())
            self._jobs.clear()
        for job in jobs:
            job.cleanup()


JOBS = BackgroundJobs()


# ---------------------------------------------------------------------------------------------
# The job's side: ``python -m serving.background JOB.json``.


def _child_main(job_file: str) -> int:
    cancel = threading.Event()
    signal.signal(signal.SIGUSR1, lambda *_: cancel.set())
    signal.signal(signal.SIGTERM, lambda *_: cancel.set())
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever TensorFlow or Keras prints goes to the log, never into the protocol

    def send(message: dict[str, Any]) -> None:
        out.write(json.dumps(message, allow_nan=True) + "\n")
        out.flush()

    send({"type": "ready"})
    spec = json.loads(Path(job_file).read_text())
    folder = Path(job_file).parent
    with contextlib.suppress(OSError):
        os.nice(int(spec.get("nice", 10)))

    last_sent = [0.0]

    def progress(event: TrainEvent) -> None:
        now = time.monotonic()
        if event.kind == "batch" and now - last_sent[0] < EVENT_INTERVAL_S and event.batch != event.batches:
            return
        last_sent[0] = now
        send({"type": "event", "event": _event_dict(event)})

    from models.training import TrainConfig, train

    try:
        config = TrainConfig.from_dict(spec["config"])
        result = train(config, progress=progress, cancel=cancel, time_limit_s=spec.get("time_limit_s"))
        _write_result(result, folder)
    except ValueError as exc:  # TrainingError, ModelLoadError, dataset errors: a sentence for the person
        send({"type": "error", "message": str(exc)})
        return 1
    except Exception as exc:
        send({"type": "error", "message": f"Training failed: {type(exc).__name__}: {str(exc)[:400]}"})
        return 1
    send({"type": "result"})
    return 0


def _event_dict(event: TrainEvent) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(event)


def _write_result(result: Any, folder: Path) -> None:
    result.model.model.save(folder / "model.keras")
    wrong = result.misclassified[:MAX_MISTAKES]
    images = result.test_images[wrong] if result.test_images is not None else np.zeros((0, 1, 1, 1), np.uint8)
    np.savez(
        folder / "result.npz",
        confusion=result.confusion,
        mistake_images=images,
        mistake_true=result.test_labels[wrong],
        mistake_predicted=result.test_predictions[wrong],
        mistake_confidence=result.test_confidence[wrong],
        mistake_index=wrong,
    )
    meta = {
        "name": result.model.name,
        "class_names": result.class_names,
        "history": result.history,
        "test_accuracy": result.test_accuracy,
        "per_class_accuracy": result.per_class_accuracy,
        "test_count": result.test_count,
        "epochs_run": result.epochs_run,
        "epoch_seconds": result.epoch_seconds,
        "seconds": result.seconds,
        "stop_reason": result.stop_reason,
        "parameters": result.parameters,
        "data_source": result.data_source,
    }
    (folder / "result.json").write_text(json.dumps(meta, allow_nan=True))


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass (for tests and scripts)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


if __name__ == "__main__":
    raise SystemExit(_child_main(sys.argv[1]))
