"""Fixtures for the worker-pool tests: real worker processes, a model whose calls take seconds.

Imported by the test modules that use them (``from pool_fixtures import ...``), so this
folder needs no conftest of its own. Each worker is a fresh Python process importing
TensorFlow (several seconds on this CPU), so a test starts as few as it can. ``long_call``
is an occlusion run of a few seconds that reports progress after every mask: a test can act
on the worker (``kill -9``, ``SIGSTOP``) from the first report, while the call is surely
still running.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

L = keras.layers

__all__ = ["image", "long_call", "model_bytes", "uploads_folder"]


def _model(seed: int, classes: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((48, 48, 3)),
            L.Conv2D(8, 3, activation="relu", name="c1"),
            L.Conv2D(8, 3, activation="relu", name="c2"),
            L.GlobalAveragePooling2D(),
            L.Dense(classes, activation="softmax"),
        ]
    )


@pytest.fixture(scope="session")
def model_bytes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Two small uploads: ``a`` (3 classes) and ``b`` (2 classes)."""
    folder = tmp_path_factory.mktemp("serving-models")
    out = {}
    for name, seed, classes in (("a", 0, 3), ("b", 1, 2)):
        path = folder / f"{name}.keras"
        _model(seed, classes).save(path)
        out[name] = path.read_bytes()
    return out


@pytest.fixture
def image() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 255, (48, 48, 3), dtype=np.uint8)


@pytest.fixture
def long_call() -> dict:
    """``explain`` keyword arguments for a call of a few seconds: ~2000 one-mask batches, a report after each."""
    return {"method": "occlusion", "patch": 4, "stride": 1, "batch_size": 1}


@pytest.fixture
def uploads_folder(tmp_path: Path) -> Path:
    return tmp_path / "uploads"
