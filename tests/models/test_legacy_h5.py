"""Keras 2 ``.h5`` files and Teachable Machine projects: checked like ``.keras`` files, then loaded into Keras 3."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import h5_fixtures as fx
import h5py
import keras
import numpy as np
import pytest

import models
from interpret import explain
from models.errors import ModelLoadError, UnsafeModelError
from models.legacy_h5 import check_h5_file, keras2_to_keras3
from models.teachable import strip_label_indices

L = keras.layers


@pytest.fixture
def picture() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)


def _datasets(path: Path) -> list[str]:
    names: list[str] = []
    with h5py.File(path, "r") as h5:
        h5.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    return names


def test_keras2_h5_with_teachable_machine_fields_loads_with_the_same_outputs(tmp_path: Path, picture) -> None:
    model = fx.teachable_like()
    path = fx.save_h5(model, tmp_path / "tm.h5", keras2=True)
    with h5py.File(path, "r") as h5:  # the fixture really carries the Keras 2 fields
        text, training = (str(h5.attrs[k]) for k in ("model_config", "training_config"))
        assert '"groups": 1' in text and "batch_input_shape" in text and '"module"' not in text
        assert "Custom>Adam" in training and str(h5.attrs["keras_version"]) in ("2.4.0", "b'2.4.0'")
    assert all(n.endswith(":0") for n in _datasets(path) if n.startswith("model_weights"))
    with pytest.raises(Exception, match="DepthwiseConv2D"):  # what Keras 3 alone does with such a file
        keras.saving.load_model(path, compile=False)

    m = models.load(str(path), class_names=["a", "b", "c"])
    x = picture[None].astype("float32") / 255.0
    np.testing.assert_allclose(m.model.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert m.last_conv_layer.startswith("sequential_1/model1/")
    e = explain(m, picture, "gradcam")
    assert e.heatmap.shape == (16, 16) and np.isfinite(e.heatmap).all()


def test_clean_h5_explains_like_the_same_model_saved_as_keras(tmp_path: Path, tiny, picture) -> None:
    model = tiny.conv_softmax(input_shape=(16, 16, 3))
    model.save(tmp_path / "same.keras")
    model.save(tmp_path / "same.h5")
    from_keras = models.load(str(tmp_path / "same.keras"))
    from_h5 = models.load(str(tmp_path / "same.h5"))
    assert from_h5.conv_layers == from_keras.conv_layers
    a = explain(from_keras, picture, "gradcam", target=1)
    b = explain(from_h5, picture, "gradcam", target=1)
    np.testing.assert_allclose(b.heatmap, a.heatmap, atol=1e-6)
    assert np.ptp(a.heatmap) > 0


def test_lambda_h5_is_refused_and_its_payload_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned.txt"
    # the marker's path is a constant of the lambda's code, so the file alone carries the payload
    fn = eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).write_text('ran'), x)[1]")  # noqa: S307
    payload = L.Lambda(fn, name="evil")
    model = keras.Sequential([keras.Input((6, 6, 1)), payload, L.Flatten(), L.Dense(2)])
    for keras2 in (False, True):
        path = fx.save_h5(model, tmp_path / f"lambda{int(keras2)}.h5", keras2=keras2)
        marker.unlink(missing_ok=True)
        with pytest.raises(UnsafeModelError, match="Lambda layer") as caught:
            models.load(str(path))
        assert path.name in str(caught.value)
        assert not marker.exists()
    keras.saving.load_model(tmp_path / "lambda0.h5", compile=False, safe_mode=False)  # armed: unchecked, it runs
    assert marker.read_text() == "ran"


def _replace_first_weight(path: Path, make) -> None:
    with h5py.File(path, "r+") as h5:
        target = next(n for n in _datasets(path) if n.startswith("model_weights") and n.endswith("kernel"))
        shape, dtype = h5[target].shape, h5[target].dtype
        del h5[target]
        make(h5, target, shape, dtype)


def test_external_storage_h5_is_refused(tmp_path: Path, tiny) -> None:
    path = tmp_path / "external.h5"
    tiny.conv_softmax().save(path)
    secret = tmp_path / "secret.bin"
    secret.write_bytes(bytes(4096))

    def external(h5, name, shape, dtype):
        h5.create_dataset(name, shape=shape, dtype=dtype, external=[(str(secret), 0, h5py.h5f.UNLIMITED)])

    _replace_first_weight(path, external)
    with pytest.raises(UnsafeModelError, match="external file"):
        models.load(str(path))


@pytest.mark.parametrize("kind", ["soft link", "external link", "virtual dataset"])
def test_links_and_virtual_datasets_are_refused(tmp_path: Path, tiny, kind: str) -> None:
    path = tmp_path / "linked.h5"
    tiny.conv_softmax().save(path)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as h5:
        h5.create_dataset("w", data=np.zeros((3, 3, 3, 4), np.float32))

    def make(h5, name, shape, dtype):
        if kind == "soft link":
            h5[name] = h5py.SoftLink("/model_weights")
        elif kind == "external link":
            h5[name] = h5py.ExternalLink(str(other), "/w")
        else:
            layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
            layout[...] = h5py.VirtualSource(str(other), "w", shape=shape)
            h5.create_virtual_dataset(name, layout)

    _replace_first_weight(path, make)
    with pytest.raises(UnsafeModelError, match=kind.split()[0]):
        models.load(str(path))


def test_huge_declared_weight_is_refused_from_the_header(tmp_path: Path, tiny) -> None:
    path = tmp_path / "huge.h5"
    tiny.conv_softmax().save(path)

    def huge(h5, name, shape, dtype):
        h5.create_dataset(name, shape=(100_000, 100_000), dtype=np.float32, chunks=(1000, 1000))

    _replace_first_weight(path, huge)
    assert path.stat().st_size < 200_000
    with pytest.raises(UnsafeModelError, match="claims shape"):
        models.load(str(path))


def test_training_config_is_walked_too(tmp_path: Path, tiny) -> None:
    path = tmp_path / "compiled.h5"
    tiny.conv_softmax().save(path)
    evil = {"loss": {"class_name": "function", "module": "os", "config": "system"}, "optimizer_config": None}
    with h5py.File(path, "r+") as h5:
        h5.attrs["training_config"] = json.dumps(evil).encode()
    with pytest.raises(UnsafeModelError, match="module 'os'"):
        check_h5_file(path)


def test_custom_module_in_model_config_is_refused(tmp_path: Path, tiny) -> None:
    path = tmp_path / "custom.h5"
    tiny.conv_softmax().save(path)
    with h5py.File(path, "r+") as h5:
        config = json.loads(h5.attrs["model_config"])
        config["config"]["layers"][1]["module"] = "my_package.layers"
        h5.attrs["model_config"] = json.dumps(config).encode()
    with pytest.raises(UnsafeModelError, match="my_package"):
        models.load(str(path))


def test_weights_only_and_non_hdf5_files_get_a_clear_message(tmp_path: Path, tiny) -> None:
    weights = tmp_path / "only.weights.h5"
    tiny.conv_softmax().save_weights(weights)
    with pytest.raises(ModelLoadError, match="only weights"):
        models.load(str(weights))
    fake = tmp_path / "fake.h5"
    fake.write_bytes(b"not hdf5 at all" * 10)
    with pytest.raises(ModelLoadError, match="not an HDF5 file"):
        models.load(str(fake))


def test_encoded_type_specs_are_refused() -> None:
    with pytest.raises(UnsafeModelError, match="TypeSpec"):
        keras2_to_keras3({"class_name": "Sequential", "config": {"x": {"class_name": "TypeSpec", "type_spec": "t"}}})
    assert keras2_to_keras3(
        {"a": {"class_name": "__tuple__", "items": [1, {"class_name": "TensorShape", "items": [2]}]}}
    ) == {"a": [1, [2]]}


def test_teachable_machine_labels() -> None:
    assert strip_label_indices(["0 Cat", "1 Dog", "2 Big bird"]) == ["Cat", "Dog", "Big bird"]
    assert strip_label_indices(["1 Cat", "0 Dog"]) == ["1 Cat", "0 Dog"]  # not numbered in order: kept
    assert strip_label_indices(["cat", "dog"]) == ["cat", "dog"]


def test_teachable_machine_project_opens_with_its_class_names(tmp_path: Path, picture) -> None:
    folder = tmp_path / "my_project"
    folder.mkdir()
    model = fx.teachable_like()
    fx.save_h5(model, folder / "keras_model.h5", keras2=True)
    (folder / "labels.txt").write_text("0 Cat\n1 Dog\n2 Bird\n")
    for where in (folder / "keras_model.h5", folder):
        m = models.load(str(where))
        assert m.class_names == ["Cat", "Dog", "Bird"]
        assert m.preprocessing.name == "-1..1"  # Teachable Machine's own scaling
        assert m.name == "my_project"
    zipped = tmp_path / "converted_keras.zip"
    with zipfile.ZipFile(zipped, "w") as z:
        z.write(folder / "keras_model.h5", "keras_model.h5")
        z.write(folder / "labels.txt", "labels.txt")
    m = models.load(str(zipped))
    assert m.class_names == ["Cat", "Dog", "Bird"]
    expected = model.predict(picture[None].astype("float32") / 127.5 - 1.0, verbose=0)
    np.testing.assert_allclose(m.predict(picture), expected, atol=1e-5)


def test_teachable_machine_zip_with_other_entries_is_refused(tmp_path: Path) -> None:
    zipped = tmp_path / "converted_keras.zip"
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("keras_model.h5", b"\x89HDF")
        z.writestr("../evil.sh", b"#!/bin/sh")
    with pytest.raises(UnsafeModelError, match="outside the archive"):
        models.load(str(zipped))
