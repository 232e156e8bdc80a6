"""Plain-data messages between the app and a model worker: JSON for the structure, NPZ for the arrays.

Nothing here unpickles. ``encode`` turns a tree of ``None``, bools, numbers, strings,
NumPy arrays and scalars, lists, tuples, dicts (any plain keys) and dataclasses into one
``.npz`` blob (``np.savez``; object arrays are refused). ``decode`` reads it back with
``allow_pickle=False`` and rebuilds dataclasses only from classes that are already imported
in the reading process and live in the project's own packages.
"""

from __future__ import annotations

import dataclasses
import io
import json
import sys
from typing import Any

import numpy as np

DATACLASS_PACKAGES = ("interpret", "models", "serving")
_JSON_KEY = "__json__"


class WireError(ValueError):
    """A value cannot be sent between processes, or a message is malformed."""


def _encode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufcUS":
            raise WireError(f"Arrays of dtype {value.dtype} cannot be sent between processes.")
        name = f"a{len(arrays)}"
        arrays[name] = value
        return {"__nd__": name}
    if isinstance(value, np.generic):
        if value.dtype.kind not in "biufUS":
            raise WireError(f"NumPy scalars of dtype {value.dtype} cannot be sent between processes.")
        return value.item()
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, arrays) for v in value]}
    if isinstance(value, list):
        return [_encode(v, arrays) for v in value]
    if isinstance(value, dict):
        return {"__dict__": [[_encode(k, arrays), _encode(v, arrays)] for k, v in value.items()]}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        fields = {f.name: _encode(getattr(value, f.name), arrays) for f in dataclasses.fields(value) if f.init}
        return {"__dc__": f"{cls.__module__}:{cls.__qualname__}", "fields": fields}
    raise WireError(f"A {type(value).__name__} cannot be sent between processes; return arrays, numbers or strings.")


def encode(value: Any) -> bytes:
    """A value tree -> NPZ bytes (no pickles)."""
    arrays: dict[str, np.ndarray] = {}
    tree = _encode(value, arrays)
    text = json.dumps(tree, allow_nan=True).encode()
    buf = io.BytesIO()
    np.savez(buf, **{_JSON_KEY: np.frombuffer(text, dtype=np.uint8)}, **arrays)
    return buf.getvalue()


def _dataclass(path: Any) -> type:
    if not isinstance(path, str) or path.count(":") != 1:
        raise WireError(f"Malformed dataclass reference {path!r}.")
    module_name, qualname = path.split(":")
    if module_name.split(".")[0] not in DATACLASS_PACKAGES or module_name not in sys.modules:
        raise WireError(f"The dataclass {path!r} is not one this process accepts.")
    cls: Any = sys.modules[module_name]
    for part in qualname.split("."):
        cls = getattr(cls, part, None)
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise WireError(f"{path!r} is not a dataclass.")
    return cls


def _decode(node: Any, arrays: Any) -> Any:
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if isinstance(node, list):
        return [_decode(v, arrays) for v in node]
    if not isinstance(node, dict) or len(node) not in (1, 2):
        raise WireError("Malformed message.")
    if "__nd__" in node:
        name = node["__nd__"]
        if not isinstance(name, str) or name == _JSON_KEY or name not in arrays:
            raise WireError("Malformed message: unknown array.")
        return arrays[name]
    if "__tuple__" in node:
        return tuple(_decode(v, arrays) for v in node["__tuple__"])
    if "__dict__" in node:
        out = {}
        for pair in node["__dict__"]:
            if not isinstance(pair, list) or len(pair) != 2:
                raise WireError("Malformed message: bad dict item.")
            key = _decode(pair[0], arrays)
            if isinstance(key, (list, dict, np.ndarray)):
                raise WireError("Malformed message: unhashable dict key.")
            out[key] = _decode(pair[1], arrays)
        return out
    if "__dc__" in node:
        cls = _dataclass(node["__dc__"])
        fields = node.get("fields")
        if not isinstance(fields, dict):
            raise WireError("Malformed message: dataclass without fields.")
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        if set(fields) - names:
            raise WireError(f"Malformed message: {cls.__name__} has no field {sorted(set(fields) - names)}.")
        return cls(**{k: _decode(v, arrays) for k, v in fields.items()})
    raise WireError("Malformed message.")


def decode(data: bytes) -> Any:
    """NPZ bytes from ``encode`` -> the value tree; arrays are loaded with ``allow_pickle=False``."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except Exception as exc:  # zipfile, ValueError (pickled object arrays) ...
        raise WireError(f"Malformed message ({type(exc).__name__}: {exc}).") from exc
    if _JSON_KEY not in arrays:
        raise WireError("Malformed message: no structure.")
    try:
        tree = json.loads(arrays[_JSON_KEY].tobytes())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise WireError("Malformed message: bad JSON.") from exc
    return _decode(tree, arrays)
