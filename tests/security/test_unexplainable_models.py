"""Models the app cannot explain are refused when loaded, with a sentence a person can act on.

The rules (models.handle.explainable_input / explainable_classes): one input, 4-D
(batch, height, width, channels) with a free batch size, a fixed height and width from 1 to
4096 pixels, 1 or 3 channels; one output of shape (batch, classes).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import pytest

import models
from models.errors import ModelLoadError
from models.handle import MAX_SIDE, ModelHandle
from models.preprocessing import PRESETS

L = keras.layers


def _head(x: keras.KerasTensor, classes: int = 2) -> keras.KerasTensor:
    return L.Dense(classes, activation="softmax")(L.GlobalAveragePooling2D()(x))


def _image_model(shape: tuple, batch_shape: tuple | None = None) -> keras.Model:
    keras.utils.set_random_seed(0)
    inp = keras.Input(batch_shape=batch_shape) if batch_shape else keras.Input(shape)
    return keras.Model(inp, _head(inp))


def two_outputs() -> keras.Model:
    inp = keras.Input((8, 8, 3))
    features = L.GlobalAveragePooling2D()(L.Conv2D(2, 3)(inp))
    return keras.Model(inp, [L.Dense(3, activation="softmax")(features), L.Dense(1)(features)])


def two_inputs() -> keras.Model:
    a, b = keras.Input((8, 8, 3)), keras.Input((8, 8, 3))
    return keras.Model([a, b], _head(L.Add()([a, b])))


def vector_input() -> keras.Model:
    inp = keras.Input((16,))
    return keras.Model(inp, L.Dense(2, activation="softmax")(inp))


def volume_input() -> keras.Model:
    inp = keras.Input((4, 8, 8, 1))
    return keras.Model(inp, L.Dense(2)(L.GlobalAveragePooling3D()(L.Conv3D(2, 3)(inp))))


def segmentation_output() -> keras.Model:
    inp = keras.Input((8, 8, 3))
    return keras.Model(inp, L.Conv2D(2, 3, activation="softmax")(inp))


CASES: dict[str, tuple[Callable[[], keras.Model], str]] = {
    # today: "int() argument must be a string, a bytes-like object or a real number, not 'tuple'"
    "two outputs": (two_outputs, r"has 2 outputs .*one output of shape \(batch, classes\).*model.outputs\[0\]"),
    "two inputs": (two_inputs, r"several inputs.*has 2"),
    "zero height": (lambda: _image_model((0, 8, 3)), r"input is 0x8 pixels; .* from 1x1 to 4096x4096"),
    "zero width": (lambda: _image_model((8, 0, 3)), r"input is 8x0 pixels"),
    "absurd height": (lambda: _image_model((MAX_SIDE + 1, 8, 1)), r"input is 4097x8 pixels"),
    "two channels": (lambda: _image_model((8, 8, 2)), r"has 2 channels; .*1 channel \(grayscale\) or 3 channels"),
    "four channels": (lambda: _image_model((8, 8, 4)), r"has 4 channels"),
    "free size": (lambda: _image_model((None, None, 3)), r"fixed size.*keras.Input\(shape=\(224, 224, 3\)\)"),
    "fixed batch": (lambda: _image_model((), batch_shape=(1, 8, 8, 3)), r"batch size is fixed to 1"),
    "vector input": (vector_input, r"must be a batch of pictures, 4-D .* takes \(None, 16\)"),
    "volume input": (volume_input, r"4-D .* takes \(None, 4, 8, 8, 1\)"),
    "per-pixel output": (segmentation_output, r"output must be \(batch, classes\); it is \(None, 6, 6, 2\)"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_unexplainable_model_file_is_refused_at_load_time(case: str, tmp_path: Path) -> None:
    build, phrase = CASES[case]
    path = tmp_path / f"{case.replace(' ', '_')}.keras"
    build().save(path)
    with pytest.raises(ModelLoadError, match=phrase) as caught:
        models.load(str(path))
    assert str(caught.value).startswith(f"{path.name}: "), str(caught.value)


@pytest.mark.parametrize("case", list(CASES))
def test_the_handle_itself_refuses_them(case: str) -> None:
    """The same refusal for a model built in a notebook and handed to ModelHandle directly."""
    build, phrase = CASES[case]
    with pytest.raises(ModelLoadError, match=phrase):
        ModelHandle("m", build(), PRESETS["0..1"], [])


def test_a_never_built_model_is_refused_clearly() -> None:
    with pytest.raises(ModelLoadError, match="no defined input.*keras.Input"):
        ModelHandle("m", keras.Sequential([L.Dense(2)]), PRESETS["0..1"], [])


@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 2, 3), (28, 28, 1), (MAX_SIDE, 2, 3)])
def test_models_inside_the_rules_load(shape: tuple[int, int, int], tmp_path: Path) -> None:
    path = tmp_path / "fine.keras"
    _image_model(shape).save(path)
    handle = models.load(str(path), class_names=["a", "b"])
    assert handle.input_shape == shape
    assert handle.predict(np.zeros((1, *shape[:2], 3), np.uint8)).shape == (1, 2)
