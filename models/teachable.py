"""Teachable Machine image projects: ``keras_model.h5`` with ``labels.txt``.

Teachable Machine's "Export model -> Tensorflow -> Keras" gives ``converted_keras.zip`` holding
``keras_model.h5`` (a Keras 2 model: a MobileNet base nested in Sequential models, with
``DepthwiseConv2D(groups=1)`` layers) and ``labels.txt`` with one ``<index> <name>`` line per
class (``0 Cat``). Its own example code feeds 224x224 RGB pictures scaled to -1..1.

- ``models.load("keras_model.h5")`` finds ``labels.txt`` next to the file;
- ``models.load("converted_keras.zip")`` (or the folder it unpacks to) opens the project;
- ``strip_label_indices`` turns ``["0 Cat", "1 Dog"]`` into ``["Cat", "Dog"]`` wherever class
  names come from (the app's class-name upload too).
"""

from __future__ import annotations

import re
import stat
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from models.errors import ModelLoadError, UnsafeModelError

MODEL_FILE = "keras_model.h5"
LABELS_FILE = "labels.txt"
TEACHABLE_PREPROCESSING = "-1..1"  # Teachable Machine's example code: (pixels / 127.5) - 1
_INDEXED = re.compile(r"^(\d+)\s+(\S.*)$")
MAX_LABEL_BYTES = 1_000_000


def strip_label_indices(names: Sequence[str]) -> list[str]:
    """``["0 Cat", "1 Dog"]`` -> ``["Cat", "Dog"]`` when every line is numbered 0, 1, 2... in order; else unchanged."""
    names = [str(n).strip() for n in names]
    if not names:
        return []
    matches = [_INDEXED.match(n) for n in names]
    if all(m is not None and int(m.group(1)) == i for i, m in enumerate(matches)):
        return [m.group(2).strip() for m in matches if m is not None]
    return names


def parse_labels(data: str | bytes) -> list[str]:
    """A ``labels.txt`` (``0 Cat`` per line) -> class names."""
    from models.class_names import parse_class_names

    return strip_label_indices(parse_class_names(data))


def project_labels(model_path: str | Path) -> list[str] | None:
    """The class names from ``labels.txt`` next to a Teachable Machine ``.h5`` file, if it is there."""
    labels = Path(model_path).with_name(LABELS_FILE)
    if not labels.is_file():
        return None
    if labels.stat().st_size > MAX_LABEL_BYTES:
        raise ModelLoadError(f"{labels.name} is larger than 1 MB; expected one '<index> <name>' line per class.")
    return parse_labels(labels.read_bytes()) or None


def unpack_project(path: Path, folder: Path, max_bytes: int) -> Path:
    """Check a project zip (only keras_model.h5 and labels.txt, plain entries, size cap) and unpack those two."""
    try:
        with zipfile.ZipFile(path) as archive:
            wanted: dict[str, zipfile.ZipInfo] = {}
            for info in archive.infolist():
                name = info.filename
                parts = PurePosixPath(name.replace("\\", "/")).parts
                if name.startswith(("/", "\\")) or ".." in parts or stat.S_ISLNK(info.external_attr >> 16):
                    raise UnsafeModelError(f"{path.name}: refused, the entry {name[:80]!r} points outside the archive.")
                base = parts[-1] if parts else ""
                if info.is_dir() or base.startswith(".") or parts[0] == "__MACOSX":
                    continue
                if base not in (MODEL_FILE, LABELS_FILE) or base in wanted:
                    raise UnsafeModelError(
                        f"{path.name}: refused, unexpected entry {name[:80]!r}; a Teachable Machine project holds "
                        f"{MODEL_FILE} and {LABELS_FILE} only."
                    )
                if info.file_size > max_bytes or (base == LABELS_FILE and info.file_size > MAX_LABEL_BYTES):
                    raise UnsafeModelError(f"{path.name}: refused, {name[:80]!r} is {info.file_size / 1e6:.0f} MB.")
                wanted[base] = info
            if MODEL_FILE not in wanted:
                raise ModelLoadError(
                    f"{path.name} has no {MODEL_FILE}: it is not a Teachable Machine Keras export "
                    "(Export model -> Tensorflow -> Keras)."
                )
            for base, info in wanted.items():
                with archive.open(info) as src, open(folder / base, "wb") as dst:
                    left = max_bytes
                    while chunk := src.read(1 << 20):
                        left -= len(chunk)
                        if left < 0:
                            raise UnsafeModelError(f"{path.name}: refused, {base} unpacks larger than declared.")
                        dst.write(chunk)
    except zipfile.BadZipFile as exc:
        raise ModelLoadError(f"{path.name} is a damaged zip archive ({exc}).") from exc
    return folder / MODEL_FILE


def is_project(path: str | Path) -> bool:
    """A Teachable Machine project: a folder with keras_model.h5, or a zip that is not a .keras file."""
    p = Path(path)
    if p.is_dir():
        return (p / MODEL_FILE).is_file()
    return p.suffix.lower() == ".zip" and p.is_file()


def load_project(
    path: str | Path,
    class_names: Sequence[str] | None = None,
    preprocessing: str | None = None,
) -> Any:
    """A ``ModelHandle`` for a Teachable Machine project folder or ``converted_keras.zip``."""
    from models.legacy_h5 import load_h5_file
    from models.safety import Limits

    p = Path(path)
    if p.is_dir():
        return load_h5_file(p / MODEL_FILE, class_names, preprocessing, name=p.name)
    with tempfile.TemporaryDirectory(prefix="cnn-lens-tm-") as folder:
        model_path = unpack_project(p, Path(folder), Limits.from_env().max_file_bytes)
        name = p.stem if p.stem != "converted_keras" else "Teachable Machine model"
        return load_h5_file(model_path, class_names, preprocessing or TEACHABLE_PREPROCESSING, name=name)
