"""Every file of the hostile corpus is refused with a clear message, and its payload never runs."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import hostile_models as hostile
import keras
import numpy as np
import pytest

import models
from models.errors import ModelLoadError, UnsafeModelError
from models.safety import Limits, check_archive, check_config, check_file, check_weights

CODE_CASES = [
    "top-level Lambda",
    "Lambda in a nested model",
    "Lambda inside TimeDistributed",
    "lambda in compile_config",
    "module os",
    "module builtins",
    "enable_unsafe_deserialization",
    "TFSMLayer",
    "custom registered name",
    "string vocabulary",
    "traversal entry",
    "absolute entry",
    "symlink entry",
    "huge weight shape",
    "legacy .h5",
    "npz weights",
]


@pytest.mark.parametrize("case", list(hostile.CASES))
def test_hostile_file_is_refused_with_a_clear_message(case: str, tmp_path: Path) -> None:
    marker = tmp_path / "marker" / "pwned.txt"
    marker.parent.mkdir()
    path = hostile.CASES[case](tmp_path, marker)
    error = UnsafeModelError if case in CODE_CASES else ModelLoadError
    with pytest.raises(error) as caught:
        models.load(str(path))
    message = str(caught.value)
    assert hostile.EXPECTED[case] in message, message
    assert path.name in message
    assert not marker.exists()
    assert not (tmp_path / marker.name).exists()


def test_the_lambda_payload_is_live_when_loaded_unsafely(tmp_path: Path) -> None:
    """Proves the corpus is armed: without the checks, loading the file runs the payload."""
    marker = tmp_path / "pwned.txt"
    path = hostile.armed_lambda_model(tmp_path, marker)
    keras.saving.load_model(path, compile=False, safe_mode=False)
    assert marker.read_text() == "ran"


def test_the_compile_config_payload_is_live_when_compiled_unsafely(tmp_path: Path) -> None:
    marker = tmp_path / "pwned.txt"
    path = hostile.compile_config_lambda(tmp_path, marker)
    model = keras.saving.load_model(path, compile=True, safe_mode=False)
    model.loss(np.zeros((1, 3), "float32"), np.zeros((1, 3), "float32"))
    assert marker.read_text() == "ran"


def test_the_huge_weights_file_really_declares_forty_gigabytes(tmp_path: Path) -> None:
    import h5py

    path = hostile.huge_weights(tmp_path, tmp_path / "m")
    with zipfile.ZipFile(path) as z, z.open("model.weights.h5") as raw, h5py.File(raw, "r") as h5:
        shapes: list[tuple[int, ...]] = []
        h5.visititems(lambda _, obj: shapes.append(obj.shape) if isinstance(obj, h5py.Dataset) else None)
    assert (100_000, 100_000) in shapes
    assert path.stat().st_size < 100_000


def test_zip_bomb_is_refused_from_the_header_without_unpacking(tmp_path: Path) -> None:
    path = hostile.zip_bomb(tmp_path, tmp_path / "m", megabytes=64)
    assert path.stat().st_size < 1_000_000  # 64 MB of zeros packed into well under 1 MB
    with pytest.raises(UnsafeModelError, match="expands"):
        check_archive(path)


def test_uncompressed_total_cap_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = hostile.write_keras(tmp_path / "ok.keras", hostile.base_model_files()[0])
    check_archive(path)
    monkeypatch.setenv("CNN_LENS_MAX_UNCOMPRESSED_MB", "0.001")
    with pytest.raises(UnsafeModelError, match="CNN_LENS_MAX_UNCOMPRESSED_MB"):
        check_archive(path)


def test_file_size_cap_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = hostile.write_keras(tmp_path / "ok.keras", hostile.base_model_files()[0])
    monkeypatch.setenv("CNN_LENS_MAX_MODEL_MB", "0.001")
    with pytest.raises(UnsafeModelError, match="CNN_LENS_MAX_MODEL_MB"):
        models.load(str(path))
    monkeypatch.setenv("CNN_LENS_MAX_MODEL_MB", "lots")
    with pytest.raises(ValueError, match="must be a number"):
        Limits.from_env()


def test_weights_cap_counts_declared_bytes(tmp_path: Path) -> None:
    path = hostile.write_keras(tmp_path / "ok.keras", hostile.base_model_files()[0])
    # conv kernel 3*3*1*2 + bias 2 + dense kernel 2*3 + bias 3 = 29 float32 values
    assert check_weights(path) == 29 * 4


def test_duplicate_entries_are_refused(tmp_path: Path) -> None:
    config = hostile.base_model_files()[0]
    path = hostile.write_keras(tmp_path / "dup.keras", config)
    with pytest.warns(UserWarning), zipfile.ZipFile(path, "a") as z:
        z.writestr("config.json", json.dumps({"class_name": "Lambda"}))
    with pytest.raises(UnsafeModelError, match="twice"):
        check_archive(path)


def test_function_references_outside_activations_are_refused() -> None:
    node = {"module": "keras.ops", "class_name": "function", "config": "eval", "registered_name": "function"}
    with pytest.raises(UnsafeModelError, match="keras.activations"):
        check_config({"class_name": "Dense", "config": {"activation": node}})
    ok = {"module": "keras.activations", "class_name": "function", "config": "relu", "registered_name": "function"}
    check_config({"class_name": "Dense", "config": {"activation": ok}})


def _safe_models() -> dict[str, keras.Model]:
    L = keras.layers
    keras.utils.set_random_seed(0)
    base = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, include_top=False, weights=None)
    transfer = keras.Sequential(
        [keras.Input((32, 32, 3)), base, L.GlobalAveragePooling2D(), L.Dense(2, activation=keras.activations.softmax)]
    )
    seq = keras.Sequential(
        [
            keras.Input((5, 4)),
            L.Bidirectional(L.LSTM(3, return_sequences=True)),
            L.TimeDistributed(L.Dense(2, activation="gelu")),
            L.Flatten(),
            L.Dense(2),
        ]
    )
    lookup = keras.Sequential([keras.Input((1,), dtype="string"), L.StringLookup(vocabulary=["cat", "dog"])])
    return {"transfer": transfer, "wrappers": seq, "lookup": lookup}


def test_ordinary_models_pass_every_check(tmp_path: Path) -> None:
    for name, model in _safe_models().items():
        model.compile(optimizer="adam", loss="mse", metrics=["mae"])
        path = tmp_path / f"{name}.keras"
        model.save(path)
        config = check_file(path)
        assert config["class_name"] == "Sequential"
    handle = models.load(str(tmp_path / "transfer.keras"), class_names=["a", "b"])
    assert handle.input_shape == (32, 32, 3)
    assert any(p.startswith(handle.model.layers[0].name + "/") for p in handle.conv_layers)
    x = np.random.default_rng(0).integers(0, 255, (1, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_allclose(handle.predict(x).sum(), 1.0, rtol=1e-5)
