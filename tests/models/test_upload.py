"""Loading a user's ``.keras`` file: basic behaviour (the hostile-file corpus lives in tests/security/)."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from models import ModelLoadError, UnsafeModelError, load
from models.class_names import parse_class_names

L = keras.layers


def save(model: keras.Model, folder, name: str) -> str:
    path = folder / f"{name}.keras"
    model.save(path)
    return str(path)


@pytest.fixture
def pictures(rng):
    return (rng.random((3, 12, 12, 3)) * 255).astype(np.uint8)


@pytest.mark.parametrize("builder", ["conv_sequential", "conv_softmax", "nested_sequential", "nested_functional"])
def test_saved_models_load_and_predict_like_the_original(tiny, tmp_path, pictures, builder):
    built = getattr(tiny, builder)()
    model = built[0] if isinstance(built, tuple) else built
    path = save(model, tmp_path, builder)
    m = load(path, class_names=["a", "b", "c"])
    assert m.source == "upload" and m.name == builder
    assert m.input_shape == (12, 12, 3)
    assert m.class_names == ["a", "b", "c"]
    assert m.head.kind == "softmax"
    np.testing.assert_allclose(m.predict(pictures), model.predict(pictures / 255.0, verbose=0), atol=1e-5)


def test_nested_upload_exposes_nested_conv_layers(tiny, tmp_path):
    model, _, _ = tiny.nested_sequential()
    m = load(save(model, tmp_path, "nested"))
    assert m.conv_layers[-1] == "base/conv2" and "base/conv1" in m.conv_layers
    assert m.class_names == ["class 0", "class 1", "class 2"]


def test_input_size_and_channels_come_from_the_model(tiny, tmp_path, rng):
    model = tiny.conv_softmax(input_shape=(20, 24, 1), classes=5)
    m = load(save(model, tmp_path, "gray"))
    assert m.input_shape == (20, 24, 1) and m.num_classes == 5
    assert m.predict((rng.random((40, 30, 3)) * 255).astype(np.uint8)).shape == (1, 5)


def test_binary_sigmoid_upload_is_two_classes(tiny, tmp_path, pictures):
    model = tiny.conv_softmax(classes=1, activation="sigmoid")
    m = load(save(model, tmp_path, "binary"), class_names=["healthy", "sick"])
    assert m.num_classes == 2 and m.head.kind == "sigmoid"
    p = model.predict(pictures / 255.0, verbose=0)
    np.testing.assert_allclose(m.predict(pictures), np.concatenate([1 - p, p], axis=1), atol=1e-5)


@pytest.mark.parametrize(
    "names_text",
    [
        "cat\ndog\nbird\n",
        "cat, dog, bird",
        json.dumps(["cat", "dog", "bird"]),
        json.dumps({"2": "bird", "0": "cat", "1": "dog"}),
    ],
    ids=["lines", "typed", "json-list", "json-mapping"],
)
def test_class_names_from_text_json_or_typed(tiny, tmp_path, names_text):
    path = save(tiny.conv_softmax(), tmp_path, "named")
    names_file = tmp_path / "names.txt"
    names_file.write_text(names_text, encoding="utf-8")
    m = load(path, class_names=parse_class_names(names_file.read_bytes()))
    assert m.class_names == ["cat", "dog", "bird"]


def test_wrong_number_of_class_names_is_a_load_error(tiny, tmp_path):
    path = save(tiny.conv_softmax(), tmp_path, "three")
    with pytest.raises(ModelLoadError, match="three.keras: The model has 3 classes but 2 class names"):
        load(path, class_names=["cat", "dog"])


def test_lambda_model_is_refused_before_keras_reads_it(tmp_path, monkeypatch):
    inp = keras.Input((8, 8, 3))
    x = L.Lambda(lambda t: t * 2.0, name="double")(inp)
    out = L.Dense(2, activation="softmax")(L.GlobalAveragePooling2D()(L.Conv2D(2, 3)(x)))
    path = save(keras.Model(inp, out), tmp_path, "with_lambda")

    calls = []
    real_load = keras.saving.load_model

    def recording_load(*args, **kwargs):
        calls.append(args)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(keras.saving, "load_model", recording_load)
    with pytest.raises(UnsafeModelError, match="Lambda"):
        load(path)
    assert calls == []  # refused from the archive's config, Keras never opened the file


def test_text_file_renamed_keras_is_a_clear_load_error(tmp_path):
    path = tmp_path / "notes.keras"
    path.write_text("this is not a model\n", encoding="utf-8")
    with pytest.raises(ModelLoadError, match="notes.keras.*not a Keras model|notes.keras.*zip"):
        load(str(path))


def test_missing_file_and_folder_are_clear_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="No such model file"):
        load(str(tmp_path / "absent.keras"))
    folder = tmp_path / "saved_model.keras"
    folder.mkdir()
    with pytest.raises(UnsafeModelError, match="folder"):
        load(str(folder))
