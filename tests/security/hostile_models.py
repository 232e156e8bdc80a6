"""Generate a corpus of hostile ``.keras`` files, each armed to create a marker file if it ever runs.

The code-carrying cases hold real marshalled Python bytecode (the format Keras itself writes
for a ``Lambda``) whose body writes ``marker``; ``armed_lambda_model`` proves the payload fires
when a model is loaded unsafely, so the refusals the tests check are refusals of a live threat.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import marshal
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

Case = Callable[[Path, Path], Path]  # (folder, marker) -> hostile file


def payload_code(marker: Path) -> str:
    """Base64 of marshalled bytecode for ``lambda x: <write marker>; x``, as Keras stores a Lambda's function."""
    fn = eval(f"lambda x, *a: (__import__('pathlib').Path({str(marker)!r}).write_text('ran'), x)[1]")  # noqa: S307
    return base64.b64encode(marshal.dumps(fn.__code__)).decode()


def lambda_layer(marker: Path, name: str = "evil") -> dict[str, Any]:
    return {
        "module": "keras.layers",
        "class_name": "Lambda",
        "config": {
            "name": name,
            "trainable": True,
            "dtype": "float32",
            "function": {
                "class_name": "__lambda__",
                "config": {"code": payload_code(marker), "defaults": None, "closure": None},
            },
            "arguments": {},
        },
        "registered_name": None,
    }


def base_model_files() -> tuple[dict[str, Any], bytes, bytes]:
    """A small safe model saved by Keras: (config, metadata bytes, weights bytes)."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(2, 3, activation="relu", name="conv"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(3, activation="softmax", name="dense"),
        ],
        name="base",
    )
    buf = io.BytesIO()
    folder = Path(__import__("tempfile").mkdtemp())
    model.save(folder / "base.keras")
    with zipfile.ZipFile(folder / "base.keras") as z:
        config = json.loads(z.read("config.json"))
        metadata = z.read("metadata.json")
        weights = z.read("model.weights.h5")
    del buf
    return config, metadata, weights


_BASE: tuple[dict[str, Any], bytes, bytes] | None = None


def _base() -> tuple[dict[str, Any], bytes, bytes]:
    global _BASE
    if _BASE is None:
        _BASE = base_model_files()
    config, metadata, weights = _BASE
    return copy.deepcopy(config), metadata, weights


def write_keras(
    path: Path, config: dict[str, Any], weights: bytes | None = None, extra: dict[str, bytes] | None = None
) -> Path:
    _, metadata, base_weights = _base()
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("metadata.json", metadata)
        z.writestr("config.json", json.dumps(config))
        z.writestr("model.weights.h5", base_weights if weights is None else weights)
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    return path


def _layers(config: dict[str, Any]) -> list[dict[str, Any]]:
    return config["config"]["layers"]


def top_level_lambda(folder: Path, marker: Path) -> Path:
    config, _, _ = _base()
    _layers(config).insert(2, lambda_layer(marker))
    return write_keras(folder / "top_lambda.keras", config)


def nested_lambda(folder: Path, marker: Path) -> Path:
    config, _, _ = _base()
    inner = {
        "module": "keras",
        "class_name": "Sequential",
        "config": {"name": "inner", "trainable": True, "layers": [lambda_layer(marker, "inner_evil")]},
        "registered_name": None,
    }
    _layers(config).insert(2, inner)
    return write_keras(folder / "nested_lambda.keras", config)


def time_distributed_lambda(folder: Path, marker: Path) -> Path:
    config, _, _ = _base()
    wrapper = {
        "module": "keras.layers",
        "class_name": "TimeDistributed",
        "config": {"name": "td", "trainable": True, "layer": lambda_layer(marker, "td_evil")},
        "registered_name": None,
    }
    _layers(config).insert(2, wrapper)
    return write_keras(folder / "time_distributed_lambda.keras", config)


def compile_config_lambda(folder: Path, marker: Path) -> Path:
    config, _, _ = _base()
    config["compile_config"] = {
        "optimizer": "adam",
        "loss": {"class_name": "__lambda__", "config": {"value": [payload_code(marker), None, None]}},
        "metrics": None,
    }
    return write_keras(folder / "compile_lambda.keras", config)


def module_os(folder: Path, marker: Path) -> Path:
    config, _, _ = _base()
    _layers(config)[1]["config"]["activation"] = {
        "module": "os",
        "class_name": "function",
        "config": "system",
        "registered_name": "function",
    }
    _layers(config)[1]["config"]["name"] = f"touch {marker}"
    return write_keras(folder / "module_os.keras", config)


def module_builtins(folder: Path, marker: Path) -> Path:
    config, _, _ = _base()
    _layers(config)[2]["config"]["activation"] = {
        "module": "builtins",
        "class_name": "function",
        "config": "exec",
        "registered_name": "function",
    }
    return write_keras(folder / "module_builtins.keras", config)


def unsafe_deserialization(folder: Path, marker: Path) -> Path:
    config, _, _ = _base()
    _layers(config)[1]["config"]["kernel_initializer"] = {
        "module": "keras.config",
        "class_name": "function",
        "config": "enable_unsafe_deserialization",
        "registered_name": "function",
    }
    _layers(config).insert(3, lambda_layer(marker))
    return write_keras(folder / "unsafe_deserialization.keras", config)


def tfsm_layer(folder: Path, marker: Path) -> Path:
    config, _, _ = _base()
    _layers(config).insert(
        2,
        {
            "module": "keras.layers",
            "class_name": "TFSMLayer",
            "config": {"name": "saved", "filepath": str(folder / "saved_model"), "call_endpoint": "serve"},
            "registered_name": None,
        },
    )
    return write_keras(folder / "tfsm.keras", config)


def custom_registered(folder: Path, marker: Path) -> Path:
    config, _, _ = _base()
    layer = _layers(config)[2]
    layer["registered_name"] = "Evil>Dense"
    return write_keras(folder / "custom_registered.keras", config)


def string_vocabulary(folder: Path, marker: Path) -> Path:
    config, _, _ = _base()
    _layers(config).insert(
        1,
        {
            "module": "keras.layers",
            "class_name": "StringLookup",
            "config": {"name": "lookup", "vocabulary": "/etc/passwd", "output_mode": "int"},
            "registered_name": None,
        },
    )
    return write_keras(folder / "string_vocabulary.keras", config)


def _class_node(module: str, name: str) -> dict[str, Any]:
    """A plain *class* node: Keras resolves ``module.name`` and, when it is a function, returns the function."""
    return {"module": module, "class_name": name, "config": {}, "registered_name": None}


def ops_activation(folder: Path, marker: Path) -> Path:
    """An activation given as a class node naming ``keras.ops.sin`` (not a keras.activations function)."""
    config, _, _ = _base()
    _layers(config)[1]["config"]["activation"] = _class_node("keras.ops", "sin")
    return write_keras(folder / "ops_activation.keras", config)


def visualization_activation(folder: Path, marker: Path) -> Path:
    """A class node naming ``keras.visualization.plot_image_gallery``, which saves a figure to ``path``."""
    config, _, _ = _base()
    _layers(config)[3]["config"]["activation"] = _class_node("keras.visualization", "plot_image_gallery")
    return write_keras(folder / "visualization_activation.keras", config)


def random_initializer(folder: Path, marker: Path) -> Path:
    """A kernel initializer naming the function ``keras.random.normal`` instead of an initializer class."""
    config, _, _ = _base()
    _layers(config)[1]["config"]["kernel_initializer"] = _class_node("keras.random", "normal")
    return write_keras(folder / "random_initializer.keras", config)


# The three cases a hidden corpus found loading through the old checker (a keras.* module was enough).
CLASS_NODE_CASES: dict[str, Case] = {
    "keras.ops class node as an activation": ops_activation,
    "keras.visualization class node": visualization_activation,
    "keras.random class node as an initializer": random_initializer,
}


def traversal_entry(folder: Path, marker: Path) -> Path:
    config, _, _ = _base()
    return write_keras(folder / "traversal.keras", config, extra={f"../{marker.name}": b"ran"})


def absolute_entry(folder: Path, marker: Path) -> Path:
    config, _, _ = _base()
    return write_keras(folder / "absolute.keras", config, extra={str(marker): b"ran"})


def symlink_entry(folder: Path, marker: Path) -> Path:
    path = write_keras(folder / "symlink.keras", _base()[0])
    with zipfile.ZipFile(path, "a") as z:
        info = zipfile.ZipInfo("assets/link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        z.writestr(info, str(marker))
    return path


def zip_bomb(folder: Path, marker: Path, megabytes: int = 64) -> Path:
    """A weights entry of ``megabytes`` of zeros: it compresses about 1000x."""
    path = folder / "bomb.keras"
    _, metadata, _ = _base()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("metadata.json", metadata)
        z.writestr("config.json", json.dumps(_base()[0]))
        with z.open("model.weights.h5", "w", force_zip64=True) as f:
            chunk = bytes(1 << 20)
            for _ in range(megabytes):
                f.write(chunk)
    return path


def huge_weights(folder: Path, marker: Path) -> Path:
    """A real model whose kernel dataset is declared 100000 x 100000 float32 (40 GB) and stores nothing."""
    import h5py

    _, _, weights = _base()
    raw = io.BytesIO(weights)
    with h5py.File(raw, "a") as h5:
        names: list[str] = []
        h5.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        target = next(n for n in names if "dense" in n)
        del h5[target]
        h5.create_dataset(target, shape=(100_000, 100_000), dtype=np.float32, chunks=(1000, 1000))
    return write_keras(folder / "huge_weights.keras", _base()[0], weights=raw.getvalue())


def not_a_zip(folder: Path, marker: Path) -> Path:
    path = folder / "renamed.keras"
    path.write_bytes(b"#!/bin/sh\ntouch " + str(marker).encode() + b"\n" * 200)
    return path


def truncated_zip(folder: Path, marker: Path) -> Path:
    good = top_level_lambda(folder, marker).read_bytes()
    path = folder / "truncated.keras"
    path.write_bytes(good[: len(good) // 2])
    return path


def legacy_h5(folder: Path, marker: Path) -> Path:
    path = folder / "legacy.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    return path


def npz_weights(folder: Path, marker: Path) -> Path:
    """Keras can read ``model.weights.npz``, with pickles allowed: the entry is refused."""
    return write_keras(folder / "npz.keras", _base()[0], extra={"model.weights.npz": b"PK"})


CASES: dict[str, Case] = {
    "top-level Lambda": top_level_lambda,
    "Lambda in a nested model": nested_lambda,
    "Lambda inside TimeDistributed": time_distributed_lambda,
    "lambda in compile_config": compile_config_lambda,
    "module os": module_os,
    "module builtins": module_builtins,
    "enable_unsafe_deserialization": unsafe_deserialization,
    "TFSMLayer": tfsm_layer,
    "custom registered name": custom_registered,
    "string vocabulary": string_vocabulary,
    **CLASS_NODE_CASES,
    "traversal entry": traversal_entry,
    "absolute entry": absolute_entry,
    "symlink entry": symlink_entry,
    "zip bomb": zip_bomb,
    "huge weight shape": huge_weights,
    "not a zip": not_a_zip,
    "truncated zip": truncated_zip,
    "legacy .h5": legacy_h5,
    "npz weights": npz_weights,
}

# A phrase each refusal's message must contain (what the person reads).
EXPECTED: dict[str, str] = {
    "top-level Lambda": "Lambda layer",
    "Lambda in a nested model": "Lambda layer",
    "Lambda inside TimeDistributed": "Lambda layer",
    "lambda in compile_config": "lambda function",
    "module os": "module 'os'",
    "module builtins": "module 'builtins'",
    "enable_unsafe_deserialization": "enable_unsafe_deserialization",
    "TFSMLayer": "TFSMLayer layer",
    "custom registered name": "custom registered object",
    "string vocabulary": "from a file or URL",
    "keras.ops class node as an activation": "keras.ops.sin",
    "keras.visualization class node": "keras.visualization.plot_image_gallery",
    "keras.random class node as an initializer": "keras.random.normal",
    "traversal entry": "points outside the archive",
    "absolute entry": "points outside the archive",
    "symlink entry": "symbolic link",
    "zip bomb": "zip bomb",
    "huge weight shape": "claims shape",
    "not a zip": "not a zip archive",
    "truncated zip": "not a zip archive",
    "legacy .h5": "HDF5 file is damaged",  # a real Keras 2 .h5 is checked and opened (tests/models/test_legacy_h5.py)
    "npz weights": "unexpected entry",
}


def armed_lambda_model(folder: Path, marker: Path) -> Path:
    """The top-level Lambda case (same payload); the tests load it unsafely once to prove it fires."""
    return top_level_lambda(folder, marker)
