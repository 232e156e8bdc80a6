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
    *hostile.CLASS_NODE_CASES,
    "traversal entry",
    "absolute entry",
    "symlink entry",
    "huge weight shape",
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


def test_keras_alone_loads_the_class_node_cases(tmp_path: Path) -> None:
    """The three cases are real gaps: Keras's own safe mode loads them, and puts keras.ops.sin in as an activation."""
    loaded = {}
    for name, case in hostile.CLASS_NODE_CASES.items():
        loaded[name] = keras.saving.load_model(case(tmp_path, tmp_path / "m"), compile=False, safe_mode=True)
    assert loaded["keras.ops class node as an activation"].layers[0].activation is keras.ops.sin
    assert loaded["keras.visualization class node"].layers[-1].activation is keras.visualization.plot_image_gallery


def _dense(**config: object) -> dict[str, object]:
    return {"module": "keras.layers", "class_name": "Dense", "config": {"units": 2, **config}, "registered_name": None}


def _node(module: str | None, name: str, **extra: object) -> dict[str, object]:
    return {"module": module, "class_name": name, "config": {}, "registered_name": None, **extra}


@pytest.mark.parametrize(
    ("where", "node", "phrase"),
    [
        ("activation", _node("keras.ops", "sin"), "'keras.ops.sin'"),
        ("activation", _node("keras.activations", "deserialize"), "'keras.activations.deserialize'"),
        (
            "activation",
            {"module": "keras.activations", "class_name": "function", "config": "get", "registered_name": "function"},
            "the function 'get' from 'keras.activations'",
        ),
        ("kernel_initializer", _node("keras.random", "normal"), "'keras.random.normal'"),
        ("kernel_initializer", _node("keras.initializers", "get"), "'keras.initializers.get'"),
        ("kernel_regularizer", _node("keras.regularizers", "deserialize"), "'keras.regularizers.deserialize'"),
        ("kernel_constraint", _node("keras.constraints", "get"), "'keras.constraints.get'"),
        ("dtype", _node("keras", "utils"), "'keras.utils'"),
        ("dtype", _node("keras.config", "enable_flash_attention"), "'keras.config.enable_flash_attention'"),
        ("bias_initializer", _node(None, "print"), "'print'"),
        ("bias_initializer", _node("keras.src.ops.numpy", "Sin"), "'keras.src.ops.numpy.Sin'"),
        ("activation", _node(None, "__typespec__", spec_name="TensorSpec"), "'__typespec__'"),
        ("activation", _node("keras.utils", "plot_model"), "'keras.utils.plot_model'"),
        ("activation", {"module": 7, "class_name": "relu"}, "without a plain class name and module"),
        ("activation", {"module": "keras.layers", "registered_name": None}, "without a plain class name"),
    ],
)
def test_every_node_that_names_an_object_is_allow_listed(where: str, node: dict, phrase: str) -> None:
    """Activations, initializers, regularizers, constraints, dtype policies: any kind of node, class or function."""
    config = {"module": "keras", "class_name": "Sequential", "config": {"layers": [_dense(**{where: node})]}}
    with pytest.raises(UnsafeModelError) as caught:
        check_config(config, "crafted.keras")
    message = str(caught.value)
    assert message.startswith("crafted.keras: refused") and phrase in message, message
    assert f"config.config.layers[0].config.{where}" in message, message


@pytest.mark.parametrize(
    "node",
    [
        _node("keras.layers", "Input"),  # a function in keras.layers
        _node("keras.layers", "Layer"),  # the bare base class
        _node("keras.layers", "JaxLayer"),
        _node("keras.models", "load_model"),
        _node("keras.saving", "load_model"),
    ],
)
def test_layers_outside_the_list_are_refused(node: dict) -> None:
    config = {"module": "keras", "class_name": "Sequential", "config": {"layers": [node]}}
    with pytest.raises(UnsafeModelError, match="crafted.keras: refused"):
        check_config(config, "crafted.keras")


def test_allow_listed_nodes_of_every_kind_pass() -> None:
    fn = {"module": "keras.activations", "class_name": "function", "config": "gelu", "registered_name": "gelu"}
    layer = _dense(
        activation=fn,
        kernel_initializer=_node("keras.initializers", "HeNormal"),
        kernel_regularizer=_node("keras.regularizers", "L1L2"),
        kernel_constraint=_node("keras.constraints", "MaxNorm"),
        dtype=_node("keras", "DTypePolicy", shared_object_id=1),
    )
    special = {"class_name": "__numpy__", "config": {"value": [1, 2], "dtype": "float32"}}
    loss = {"module": "builtins", "class_name": "function", "config": "mean_squared_error", "registered_name": None}
    config = {
        "module": "keras.src.models.functional",
        "class_name": "Functional",
        "registered_name": "Functional",
        "config": {"layers": [layer, {"class_name": "ReLU", "config": {"threshold": special}}]},
        "compile_config": {"optimizer": _node("keras.optimizers", "Adam"), "loss": loss},
    }
    check_config(config, "fine.keras")


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


def test_the_bundled_model_passes_every_check() -> None:
    config = check_file(Path(models.__file__).parent.parent / "assets" / "models" / "fashion_mnist_cnn.keras")
    assert config["class_name"] in ("Functional", "Sequential")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet50", "vgg16", "efficientnet_b0", "inception_v3"])
def test_zoo_architectures_saved_as_keras_files_pass_and_load(name: str, tmp_path: Path) -> None:
    """keras.applications models (weights=None, saved as .keras) pass the allow-list and load as handles."""
    from models.zoo import ZOO

    size = 75 if name == "inception_v3" else 32  # the smallest input each accepts: same layers, smaller weights
    model = ZOO[name].build(weights=None, input_shape=(size, size, 3), classes=4, classifier_activation="softmax")
    path = tmp_path / f"{name}.keras"
    model.save(path)
    check_file(path)
    handle = models.load(str(path), class_names=["a", "b", "c", "d"])
    assert handle.input_shape == (size, size, 3) and handle.head.kind == "softmax"
    keras.backend.clear_session()


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
