"""Shared fixtures: tiny seeded Keras models built in the test process (no downloads).

The builders live on the ``tiny`` fixture so any test can make a fresh variant::

    def test_something(tiny, handle_of):
        m = handle_of(tiny.conv_softmax())

Every builder seeds Keras first, so the same call gives the same weights.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import SimpleNamespace

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

L = keras.layers


def _seed(seed: int) -> None:
    keras.utils.set_random_seed(seed)


def conv_softmax(input_shape=(12, 12, 3), classes: int = 3, seed: int = 0, activation: str = "softmax") -> keras.Model:
    """Functional: conv(relu) -> conv(relu) -> GAP -> Dense(classes, activation)."""
    _seed(seed)
    inp = keras.Input(shape=input_shape, name="image")
    x = L.Conv2D(4, 3, activation="relu", name="conv1")(inp)
    x = L.Conv2D(5, 3, activation="relu", name="conv2")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    out = L.Dense(classes, activation=activation, name="predictions")(x)
    return keras.Model(inp, out, name="tiny_functional")


def conv_sequential(
    input_shape=(12, 12, 3), classes: int = 3, seed: int = 0, activation: str = "softmax"
) -> keras.Model:
    """Sequential twin of ``conv_softmax`` (with its own weights)."""
    _seed(seed)
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            L.Conv2D(4, 3, activation="relu", name="conv1"),
            L.Conv2D(5, 3, activation="relu", name="conv2"),
            L.GlobalAveragePooling2D(name="gap"),
            L.Dense(classes, activation=activation, name="predictions"),
        ],
        name="tiny_sequential",
    )


def conv_base(input_shape=(12, 12, 3), seed: int = 0, name: str = "base") -> keras.Model:
    """A functional feature extractor with BatchNorm (inference mode matters) and two convs."""
    _seed(seed)
    inp = keras.Input(shape=input_shape)
    x = L.Conv2D(4, 3, name="conv1")(inp)
    x = L.BatchNormalization(name="bn1")(x)
    x = L.ReLU(name="relu1")(x)
    x = L.Conv2D(6, 3, activation="relu", name="conv2")(x)
    base = keras.Model(inp, x, name=name)
    # Non-trivial BatchNorm statistics, so training=True and training=False differ.
    bn = base.get_layer("bn1")
    gamma, beta, mean, var = bn.get_weights()
    rng = np.random.default_rng(seed)
    bn.set_weights([gamma * 1.5, beta + 0.1, mean + rng.normal(0, 0.1, mean.shape), var * 2.0])
    return base


def nested_sequential(input_shape=(12, 12, 3), classes: int = 3, seed: int = 0, frozen: bool = True):
    """Transfer-learning style: functional base inside the user's Sequential. Returns (model, base, head layers)."""
    base = conv_base(input_shape, seed)
    base.trainable = not frozen
    gap = L.GlobalAveragePooling2D(name="gap")
    dense = L.Dense(classes, activation="softmax", name="predictions")
    model = keras.Sequential([keras.Input(shape=input_shape), base, gap, L.Dropout(0.5, name="drop"), dense])
    return model, base, (gap, dense)


def nested_functional(input_shape=(12, 12, 3), classes: int = 3, seed: int = 0):
    """A Sequential base inside a functional model. Returns (model, base)."""
    _seed(seed)
    base = keras.Sequential(
        [keras.Input(shape=input_shape), L.Conv2D(4, 3, activation="relu", name="conv1"), L.Conv2D(5, 3, name="conv2")],
        name="seq_base",
    )
    inp = keras.Input(shape=input_shape)
    x = base(inp)
    x = L.ReLU(name="top_relu")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    out = L.Dense(classes, activation="softmax", name="predictions")(x)
    return keras.Model(inp, out, name="outer"), base


def two_levels(input_shape=(12, 12, 3), classes: int = 3, seed: int = 0):
    """Functional inside functional inside Sequential. Returns (model, inner, middle)."""
    _seed(seed)
    i0 = keras.Input(shape=input_shape)
    inner = keras.Model(i0, L.Conv2D(4, 3, activation="relu", name="conv_a")(i0), name="inner")
    i1 = keras.Input(shape=input_shape)
    y = inner(i1)
    y = L.Conv2D(5, 3, name="conv_b")(y)
    y = L.BatchNormalization(name="bn")(y)
    middle = keras.Model(i1, L.ReLU(name="relu_b")(y), name="middle")
    model = keras.Sequential(
        [
            keras.Input(shape=input_shape),
            middle,
            L.GlobalAveragePooling2D(name="gap"),
            L.Dense(classes, activation="softmax", name="predictions"),
        ],
        name="outer_seq",
    )
    return model, inner, middle


def dense_head(input_shape=(6, 6, 1), classes: int = 2, seed: int = 0, activation: str | None = None) -> keras.Model:
    """Flatten -> Dense: the simplest model whose input gradient is a weight column."""
    _seed(seed)
    return keras.Sequential(
        [keras.Input(shape=input_shape), L.Flatten(name="flat"), L.Dense(classes, activation=activation, name="dense")],
        name="linear",
    )


TINY = SimpleNamespace(
    conv_softmax=conv_softmax,
    conv_sequential=conv_sequential,
    conv_base=conv_base,
    nested_sequential=nested_sequential,
    nested_functional=nested_functional,
    two_levels=two_levels,
    dense_head=dense_head,
)


@pytest.fixture(scope="session")
def tiny() -> SimpleNamespace:
    """Builders of tiny seeded models (see this module)."""
    return TINY


@pytest.fixture(scope="session")
def handle_of() -> Callable:
    """``handle_of(model, class_names=None, preprocessing="0..1")`` -> ModelHandle."""
    from models.handle import ModelHandle
    from models.preprocessing import PRESETS

    def make(model: keras.Model, class_names=None, preprocessing: str = "0..1", name: str = "tiny"):
        return ModelHandle(name, model, PRESETS[preprocessing], list(class_names or []), source="upload")

    return make


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of two maps after min-max normalisation (flattened)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    a = (a - a.min()) / (np.ptp(a) or 1.0)
    b = (b - b.min()) / (np.ptp(b) or 1.0)
    return float(np.corrcoef(a, b)[0, 1])


@pytest.fixture(scope="session")
def correlation() -> Callable[[np.ndarray, np.ndarray], float]:
    """Pearson correlation of two maps after min-max normalisation."""
    return pearson
