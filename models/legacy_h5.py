"""Keras 2 ``.h5`` model files: checked as strictly as ``.keras``, then loaded into Keras 3.

A legacy HDF5 model keeps its architecture in the ``model_config`` attribute (JSON), its
compile settings in ``training_config`` and its weights in the ``model_weights`` group. Keras
has ignored ``safe_mode`` for this format (CVE-2025-9905: a Lambda layer's bytecode ran on
load), so the checks here are the guard, and they run before Keras opens the file:

1. ``check_h5_file``: the file is HDF5 and within the size cap; every object is reached by a
   hard link (no soft or external links), no dataset is virtual or keeps its data in an
   external file, every dataset is numeric, and the bytes all datasets declare stay within the
   weights cap (``models.safety.declared_weight_bytes``); attributes are capped in size.
2. The ``model_config`` and ``training_config`` JSON, after ``keras2_to_keras3``, go through
   ``models.safety.check_config``: the same allow-list walker as a ``.keras`` file's
   ``config.json`` (every layer, nested models, initializers, optimizers...).
3. ``load_h5_file`` writes the *checked, converted* config into a private copy of the file
   (``training_config`` removed) and loads that copy with ``compile=False``.

Known Keras 2 -> 3 differences handled by ``keras2_to_keras3``: ``DepthwiseConv2D(groups=1)``
(Teachable Machine exports, teachablemachine-community #403), tuples and ``TensorShape``s
written as ``{"class_name": "__tuple__"}`` objects, and ``Custom>Adam``-style optimizer names
of TF 2.11+. Keras's own legacy loader then handles ``batch_input_shape``, list ``axis``
values and the old ``inbound_nodes`` lists.

Teachable Machine image projects (``keras_model.h5`` with ``labels.txt``, lines like
``0 Cat``) open with their class names and Teachable Machine's input scaling (-1..1); see
``models.teachable``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.errors import ModelLoadError, UnsafeModelError
from models.safety import MB, Limits, check_config, declared_weight_bytes

H5_SUFFIXES = (".h5", ".hdf5")
ROOT_ATTRIBUTES = {"model_config", "training_config", "keras_version", "backend"}
MAX_ATTRIBUTE_BYTES = 1 * MB  # per attribute other than the configs (layer and weight name lists)
SPECIAL_ENCODED = {"__tuple__", "TensorShape"}  # written by Keras 2's JSON encoder; plain lists here
REFUSED_ENCODED = {"TypeSpec", "CompositeTensor"}  # Keras's legacy JSON decoder would rebuild these objects
OPTIMIZER_PREFIX = "Custom>"


def is_h5(path: str | Path) -> bool:
    return Path(path).suffix.lower() in H5_SUFFIXES


def _decode_attr(value: Any, label: str, name: str, limit: int) -> str:
    if isinstance(value, bytes):
        if len(value) > limit:
            raise UnsafeModelError(f"{label}: refused, its {name} attribute is {len(value) / MB:.1f} MB.")
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ModelLoadError(f"{label}: its {name} attribute is not UTF-8 text.") from exc
    if isinstance(value, str):
        if len(value) > limit:
            raise UnsafeModelError(f"{label}: refused, its {name} attribute is {len(value) / MB:.1f} MB.")
        return value
    raise ModelLoadError(f"{label}: its {name} attribute is not JSON text.")


def _parse_json(text: str, label: str, name: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError as exc:
        raise UnsafeModelError(f"{label}: refused, its {name} is nested too deeply to read.") from exc
    except ValueError as exc:
        raise ModelLoadError(f"{label}: its {name} is not valid JSON ({str(exc)[:120]}).") from exc


def keras2_to_keras3(config: Any, label: str = "model") -> Any:
    """A copy of a Keras 2 config that Keras 3 reads; refuses encoded objects Keras would rebuild.

    Iterative (a stack, no recursion), so a deep config cannot exhaust the Python stack; the
    walker that checks the result has its own caps on nodes and depth.
    """
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any]] = [(config, root, 0)]  # (value, parent container, key in parent)
    while stack:
        value, parent, key = stack.pop()
        if isinstance(value, dict):
            cls = value.get("class_name")
            if cls in REFUSED_ENCODED:
                raise UnsafeModelError(
                    f"{label}: refused, its config holds an encoded {cls} object, which the legacy loader would "
                    "rebuild from the file. Re-save the model with plain layers."
                )
            if cls in SPECIAL_ENCODED and isinstance(value.get("items"), list):
                out_list: list[Any] = [None] * len(value["items"])
                parent[key] = out_list
                stack.extend((v, out_list, i) for i, v in enumerate(value["items"]))
                continue
            out: dict[Any, Any] = {}
            parent[key] = out
            if cls == "DepthwiseConv2D" and isinstance(value.get("config"), dict):
                inner = dict(value["config"])
                if inner.get("groups", 1) == 1:
                    inner.pop("groups", None)  # Keras 2 wrote groups=1; Keras 3 refuses the argument
                value = {**value, "config": inner}
            if isinstance(cls, str) and cls.startswith(OPTIMIZER_PREFIX):
                value = {**value, "class_name": cls[len(OPTIMIZER_PREFIX) :]}
            for k, v in value.items():
                out[k] = None
                stack.append((v, out, k))
        elif isinstance(value, list):
            out_list = [None] * len(value)
            parent[key] = out_list
            stack.extend((v, out_list, i) for i, v in enumerate(value))
        else:
            parent[key] = value
    return root[0]


def _check_objects(h5: Any, label: str, limits: Limits, stored: int) -> int:
    """Links, storage, types and declared sizes of everything in the file; returns the declared weight bytes."""
    import h5py

    pending = [h5]
    count = 0
    while pending:
        group = pending.pop()
        for name, value in group.attrs.items() if group.name != "/" else ():
            _check_attribute(name, value, label, group.name)
        for key in group:
            link = group.get(key, getlink=True)
            if not isinstance(link, h5py.HardLink):
                kind = "an external link" if isinstance(link, h5py.ExternalLink) else "a soft link"
                raise UnsafeModelError(
                    f"{label}: refused, {group.name.rstrip('/')}/{key[:60]} is {kind}; a model file must hold its "
                    "own data."
                )
            count += 1
            if count > limits.max_entries:
                raise UnsafeModelError(f"{label}: refused, the file has more than {limits.max_entries:,} objects.")
            item = group[key]
            if isinstance(item, h5py.Group):
                pending.append(item)
            elif isinstance(item, h5py.Dataset):
                for name, value in item.attrs.items():
                    _check_attribute(name, value, label, item.name)
                if item.is_virtual:
                    raise UnsafeModelError(
                        f"{label}: refused, {item.name[:80]} is a virtual dataset (its data lives in other files)."
                    )
                if item.external:
                    raise UnsafeModelError(
                        f"{label}: refused, {item.name[:80]} keeps its data in an external file "
                        f"({str(item.external[0][0])[:80]!r})."
                    )
            else:
                raise UnsafeModelError(f"{label}: refused, {key[:60]!r} is neither a group nor a dataset.")
    cap = min(limits.max_weight_bytes, max(int(stored * limits.max_compression_ratio), MB))
    return declared_weight_bytes(h5, label, cap, stored, limits)


def _check_attribute(name: str, value: Any, label: str, where: str) -> None:
    import numpy as np

    size = len(value) if isinstance(value, (bytes, str)) else int(getattr(value, "nbytes", 0) or 0)
    if isinstance(value, np.ndarray) and value.dtype == object:
        size = sum(len(v) if isinstance(v, (bytes, str)) else 64 for v in value.ravel())
    if size > MAX_ATTRIBUTE_BYTES:
        raise UnsafeModelError(f"{label}: refused, the attribute {name[:40]!r} of {where[:60]} is {size / MB:.1f} MB.")


def check_h5_file(path: str | Path, limits: Limits | None = None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """All the checks of a legacy ``.h5`` model; returns its (model config, training config), converted for Keras 3."""
    import h5py

    path = Path(path)
    label = path.name
    limits = limits or Limits.from_env()
    if not is_h5(path):
        raise UnsafeModelError(f"{label}: a Keras 2 model file must end in .h5 or .hdf5.")
    if not path.is_file():
        raise ModelLoadError(f"No such model file: {label}")
    size = path.stat().st_size
    if size > limits.max_file_bytes:
        raise UnsafeModelError(
            f"{label} is {size / MB:.0f} MB; the limit is {limits.max_file_bytes / MB:.0f} MB (CNN_LENS_MAX_MODEL_MB)."
        )
    if not h5py.is_hdf5(str(path)):
        raise ModelLoadError(
            f"{label} is not an HDF5 file, so it is not a Keras 2 .h5 model. Save it with "
            "`model.save('name.h5')` (Keras 2) or `model.save('name.keras')` and upload the whole file."
        )
    try:
        with h5py.File(path, "r") as h5:
            for name, value in h5.attrs.items():
                if name not in ("model_config", "training_config"):
                    _check_attribute(name, value, label, "/")
            raw_model = h5.attrs.get("model_config")
            raw_training = h5.attrs.get("training_config")
            if raw_model is None:
                raise ModelLoadError(
                    f"{label} holds only weights (no model_config): build the model in code and call "
                    "`model.load_weights(...)`, then save it with `model.save('name.keras')`."
                )
            if "model_weights" not in h5:
                raise ModelLoadError(f"{label} has a model config but no model_weights group; save the model again.")
            model_text = _decode_attr(raw_model, label, "model_config", limits.max_config_bytes)
            training_text = (
                _decode_attr(raw_training, label, "training_config", limits.max_config_bytes)
                if raw_training is not None
                else None
            )
            _check_objects(h5, label, limits, size)
    except (UnsafeModelError, ModelLoadError):
        raise
    except Exception as exc:  # h5py raises OSError, KeyError, ValueError... on damaged files
        raise ModelLoadError(f"{label}: the HDF5 file is damaged ({type(exc).__name__}: {exc}).") from exc
    model_config = keras2_to_keras3(_parse_json(model_text, label, "model_config"), label)
    if not isinstance(model_config, dict) or "class_name" not in model_config:
        raise ModelLoadError(f"{label}: its model_config does not describe a model.")
    check_config(model_config, label, limits)
    training_config = None
    if training_text is not None:
        training_config = keras2_to_keras3(_parse_json(training_text, label, "training_config"), label)
        check_config({"training_config": training_config}, label, limits)
    return model_config, training_config


def _loadable_copy(path: Path, model_config: dict[str, Any], folder: Path) -> Path:
    """A private copy of the file carrying the checked, converted config and no training config."""
    import h5py

    copy = folder / "model.h5"
    shutil.copyfile(path, copy)
    with h5py.File(copy, "r+") as h5:
        h5.attrs["model_config"] = json.dumps(model_config).encode("utf-8")
        if "training_config" in h5.attrs:
            del h5.attrs["training_config"]
    return copy


def load_h5_model(path: str | Path, limits: Limits | None = None) -> Any:
    """The checked Keras 2 model as a Keras 3 ``keras.Model`` (uncompiled)."""
    import keras

    path = Path(path)
    model_config, _ = check_h5_file(path, limits)
    with tempfile.TemporaryDirectory(prefix="cnn-lens-h5-") as folder:
        copy = _loadable_copy(path, model_config, Path(folder))
        try:
            model = keras.saving.load_model(copy, compile=False, safe_mode=True)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(f"Keras could not load {path.name}: {first[:300]}") from exc
    if not isinstance(model, keras.Model):
        raise ModelLoadError(f"{path.name} holds a {type(model).__name__}, not a Keras model.")
    return model


def load_h5_file(
    path: str | Path,
    class_names: Sequence[str] | None = None,
    preprocessing: str | None = None,
    name: str | None = None,
) -> Any:
    """A ``ModelHandle`` for a Keras 2 ``.h5`` file (a Teachable Machine project gets its labels and scaling)."""
    from models.handle import ModelHandle
    from models.preprocessing import PRESETS
    from models.teachable import TEACHABLE_PREPROCESSING, project_labels, strip_label_indices

    path = Path(path)
    model = load_h5_model(path)
    names = strip_label_indices(list(class_names or []))
    labels = project_labels(path) if not names else None
    if labels:
        names = labels
    preset = preprocessing or (TEACHABLE_PREPROCESSING if labels else "0..1")
    if preset not in PRESETS:
        raise ValueError(f"Unknown preprocessing {preset!r}; choose one of {sorted(PRESETS)}.")
    stem = path.parent.name if labels and path.stem == "keras_model" and path.parent.name else path.stem
    try:
        return ModelHandle(name or stem, model, PRESETS[preset], names, source="upload")
    except ValueError as exc:
        raise ModelLoadError(f"{path.name}: {exc}") from exc


def convert_h5_to_keras(src: str | Path, dst: str | Path) -> dict[str, Any]:
    """Check and load ``src`` (.h5), then save it as a Keras 3 ``.keras`` file; returns what it found."""
    model = load_h5_model(src)
    model.save(dst)
    return {"name": model.name, "input_shape": list(model.input_shape[1:]), "parameters": int(model.count_params())}


def main(argv: list[str] | None = None) -> int:
    """``python -m models.legacy_h5 SRC.h5 DST.keras``: check and convert (the app runs this in a subprocess)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m models.legacy_h5", description=main.__doc__)
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    args = parser.parse_args(argv)
    try:
        info = convert_h5_to_keras(args.src, args.dst)
    except ValueError as exc:  # ModelLoadError, UnsafeModelError: a message for the person
        print(json.dumps({"ok": False, "error": str(exc), "unsafe": isinstance(exc, UnsafeModelError)}))
        return 1
    print(json.dumps({"ok": True, **info}))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
