"""User-trained models: a ``.keras`` file, checked first, then loaded with ``safe_mode=True, compile=False``.

``load_keras_file`` loads in this process (the library API, ``models.load(path)``). The app
loads uploads in a sandboxed worker process instead (``serving.worker``), which calls this
same function there.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras

from models.errors import ModelLoadError, UnsafeModelError
from models.handle import ModelHandle
from models.preprocessing import PRESETS
from models.safety import check_file


def load_keras_file(
    path: str | Path,
    class_names: Sequence[str] | None = None,
    preprocessing: str = "0..1",
    name: str | None = None,
) -> ModelHandle:
    path = Path(path)
    if path.is_dir():
        raise UnsafeModelError(f"{path.name} is a folder (a SavedModel?). Only `.keras` files are accepted.")
    if not path.exists():
        raise ModelLoadError(f"No such model file: {path}")
    if path.suffix.lower() in (".h5", ".hdf5"):  # Keras 2: its own checks (models.legacy_h5), then Keras 3
        from models.legacy_h5 import load_h5_file

        return load_h5_file(path, class_names, preprocessing, name)
    check_file(path)
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"Keras could not load {path.name}: {first}") from exc
    if not isinstance(model, keras.Model):
        raise ModelLoadError(f"{path.name} holds a {type(model).__name__}, not a Keras model.")
    if preprocessing not in PRESETS:
        raise ValueError(f"Unknown preprocessing {preprocessing!r}; choose one of {sorted(PRESETS)}.")
    try:
        return ModelHandle(name or path.stem, model, PRESETS[preprocessing], list(class_names or []), source="upload")
    except ValueError as exc:
        raise ModelLoadError(f"{path.name}: {exc}") from exc
