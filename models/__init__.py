"""Getting a model: the bundled default, the ImageNet zoo, or a user's ``.keras`` file.

>>> from models import load
>>> m = load("fashion-mnist-cnn")
>>> m = load("mobilenet_v2", weights=None)
>>> m = load("my_model.keras", class_names=["cat", "dog"])
>>> m = load("keras_model.h5")   # Keras 2 / Teachable Machine (labels.txt next to it), checked first
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from collections.abc import Sequence  # noqa: E402

from models.errors import ModelLoadError, UnsafeModelError  # noqa: E402
from models.handle import ModelHandle  # noqa: E402

BUNDLED = "fashion-mnist-cnn"


def available() -> list[str]:
    """Names ``load`` accepts besides file paths."""
    from models.zoo import ZOO

    return [BUNDLED, *ZOO]


def load(
    name_or_path: str | os.PathLike,
    class_names: Sequence[str] | None = None,
    weights: str | None = "imagenet",
    preprocessing: str | None = None,
) -> ModelHandle:
    """A ``ModelHandle`` for a bundled name, a zoo name, or a ``.keras`` / Keras 2 ``.h5`` file path.

    ``preprocessing=None`` is the file's own default: ``"0..1"``, or ``"-1..1"`` for a Teachable
    Machine project (``keras_model.h5`` with ``labels.txt``, its folder, or ``converted_keras.zip``).
    """
    key = str(name_or_path)
    if key == BUNDLED:
        from models.bundled import load_bundled

        return load_bundled()
    from models.zoo import ZOO, load_zoo

    if key in ZOO:
        return load_zoo(key, weights=weights)
    if key.lower().endswith((".h5", ".hdf5")):
        from models.legacy_h5 import load_h5_file

        return load_h5_file(key, class_names=class_names, preprocessing=preprocessing)
    from models.teachable import is_project, load_project

    if not key.endswith(".keras") and is_project(key):
        return load_project(key, class_names=class_names, preprocessing=preprocessing)
    if key.endswith(".keras") or os.path.sep in key or os.path.exists(key):
        from models.upload import load_keras_file

        return load_keras_file(key, class_names=class_names, preprocessing=preprocessing or "0..1")
    raise ModelLoadError(
        f"Unknown model {key!r}. Choose one of {', '.join(available())}, or give a path to a .keras or .h5 file."
    )


__all__ = ["BUNDLED", "ModelHandle", "ModelLoadError", "UnsafeModelError", "available", "load"]
