"""Uploaded Keras 2 ``.h5`` files and Teachable Machine projects, made into ``.keras`` files for the worker pool.

The server never lets Keras read an uploaded ``.h5``:

1. here, with h5py only, ``models.legacy_h5.check_h5_file`` checks the file (links, external
   storage, virtual datasets, declared sizes, and ``model_config`` / ``training_config``
   through the same allow-list walker as a ``.keras`` config);
2. a separate, short-lived process (``python -m models.legacy_h5 SRC DST``), with a time and
   a memory limit (the worker's: ``CNN_LENS_WORKER_LOAD_TIMEOUT_S``,
   ``CNN_LENS_WORKER_MAX_RSS_MB``), loads it into Keras 3 and saves it as ``.keras``;
3. that ``.keras`` file then goes to the worker pool like any upload (checked again there).

A Teachable Machine ``converted_keras.zip`` is unpacked here first (only ``keras_model.h5``
and ``labels.txt``; ``models.teachable``), and its labels become the class names.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from models.errors import ModelLoadError, UnsafeModelError
from models.legacy_h5 import check_h5_file, is_h5
from models.safety import Limits
from models.teachable import LABELS_FILE, MODEL_FILE, TEACHABLE_PREPROCESSING, parse_labels, unpack_project
from serving.worker import WorkerLimits, rss_bytes

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class ConvertedUpload:
    """A checked legacy upload as ``.keras`` bytes, with what the project said about itself."""

    keras_bytes: bytes
    filename: str  # "<stem>.keras"
    class_names: list[str]  # from labels.txt (Teachable Machine), else empty
    preprocessing: str | None  # "-1..1" for a Teachable Machine project, else None (the person chooses)


def is_legacy_upload(filename: str) -> bool:
    return is_h5(filename) or Path(filename).suffix.lower() == ".zip"


def _convert(src: Path, dst: Path, limits: WorkerLimits) -> None:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "models.legacy_h5", str(src), str(dst)],
            cwd=str(ROOT),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=env,
        )
        deadline = time.monotonic() + limits.load_timeout_s
        why = ""
        while proc.poll() is None:
            if rss_bytes(proc.pid) > limits.max_rss_bytes:
                why = f"it used more than {limits.max_rss_bytes / 1e6:.0f} MB of memory (CNN_LENS_WORKER_MAX_RSS_MB)"
            elif time.monotonic() > deadline:
                why = f"it took longer than {limits.load_timeout_s:.0f} s (CNN_LENS_WORKER_LOAD_TIMEOUT_S)"
            if why:
                proc.kill()
                proc.wait()
                raise ModelLoadError(f"{src.name} could not be converted: {why}.")
            time.sleep(0.1)
        out.seek(0)
        lines = [line for line in out.read().decode(errors="replace").splitlines() if line.startswith("{")]
        reply = json.loads(lines[-1]) if lines else {}
        if not reply.get("ok"):
            message = reply.get("error")
            if not message:
                err.seek(0)
                tail = err.read().decode(errors="replace").strip().splitlines()
                message = f"{src.name} could not be converted (exit code {proc.returncode}): {(tail or [''])[-1][:300]}"
            raise (UnsafeModelError if reply.get("unsafe") else ModelLoadError)(message)


def convert_upload(data: bytes, filename: str, limits: WorkerLimits | None = None) -> ConvertedUpload:
    """Check an uploaded ``.h5`` (or Teachable Machine ``.zip``) here, convert it in a subprocess, return ``.keras`` bytes."""
    limits = limits or WorkerLimits.from_env()
    name = Path(str(filename)).name
    stem = Path(name).stem or "model"
    with tempfile.TemporaryDirectory(prefix="cnn-lens-h5-upload-") as folder:
        work = Path(folder)
        labels: list[str] = []
        preprocessing = None
        if Path(name).suffix.lower() == ".zip":
            (work / "upload.zip").write_bytes(data)
            unpacked = work / "project"
            unpacked.mkdir()
            src = unpack_project(work / "upload.zip", unpacked, Limits.from_env().max_file_bytes)
            if (unpacked / LABELS_FILE).is_file():
                labels = parse_labels((unpacked / LABELS_FILE).read_bytes())
            preprocessing = TEACHABLE_PREPROCESSING
            stem = "teachable_machine" if stem == "converted_keras" else stem
        else:
            safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._")[:80]
            src = work / (safe if is_h5(safe) else "upload.h5")
            src.write_bytes(data)
            if name == MODEL_FILE:  # Teachable Machine's export, uploaded without its zip
                preprocessing = TEACHABLE_PREPROCESSING
        check_h5_file(src)  # here, without Keras: a refusal never starts the converter
        dst = work / "converted.keras"
        _convert(src, dst, limits)
        return ConvertedUpload(dst.read_bytes(), f"{stem}.keras", labels, preprocessing)
