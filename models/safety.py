"""Check an uploaded ``.keras`` file before Keras reads a byte of it.

An uploaded model is a program: a ``Lambda`` layer carries Python bytecode, a module
reference can name ``os``, a lookup layer's vocabulary can be a path or a URL, a zip
archive can be a bomb and an HDF5 dataset can claim terabytes. Three checks run here,
in order, and only then is the file loaded with ``safe_mode=True, compile=False``:

1. ``check_archive``: the zip container (allowed entries only, no traversal, absolute
   paths, symlinks or duplicates; caps on file size, uncompressed size and ratio).
2. ``check_config``: the whole ``config.json`` tree, nested models, wrappers and
   ``compile_config`` included.
3. ``check_weights``: every dataset declared in ``model.weights.h5`` against a byte cap,
   read from the header without loading any data.

The caps come from environment variables (read at each call, so a server can be tuned
without code changes); ``Limits.from_env()`` lists them.
"""

from __future__ import annotations

import json
import os
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from models.errors import ModelLoadError, UnsafeModelError

WEIGHTS_ENTRY = "model.weights.h5"
ALLOWED_ENTRIES = {"config.json", "metadata.json", WEIGHTS_ENTRY}
ALLOWED_PREFIXES = ("assets/",)
FORBIDDEN_CLASSES = {"Lambda", "TFSMLayer", "__lambda__", "TorchModuleWrapper", "JaxLayer", "FlaxLayer"}
FUNCTION_MODULES = ("keras.activations", "keras.src.activations")
VOCABULARY_KEYS = {"vocabulary", "idf_weights", "vocabulary_file", "filepath", "file_path"}
MB = 1_000_000


@dataclass(frozen=True)
class Limits:
    """Caps on an uploaded model; defaults suit a class server, environment variables override them."""

    max_file_bytes: int = 500 * MB
    max_uncompressed_bytes: int = 2_000 * MB
    max_compression_ratio: float = 100.0
    max_config_bytes: int = 20 * MB
    max_weight_bytes: int = 2_000 * MB
    max_entries: int = 10_000

    @classmethod
    def from_env(cls) -> Limits:
        """``CNN_LENS_MAX_MODEL_MB``, ``CNN_LENS_MAX_UNCOMPRESSED_MB``, ``CNN_LENS_MAX_COMPRESSION_RATIO``,
        ``CNN_LENS_MAX_WEIGHTS_MB``."""
        return cls(
            max_file_bytes=int(_env_float("CNN_LENS_MAX_MODEL_MB", cls.max_file_bytes / MB) * MB),
            max_uncompressed_bytes=int(
                _env_float("CNN_LENS_MAX_UNCOMPRESSED_MB", cls.max_uncompressed_bytes / MB) * MB
            ),
            max_compression_ratio=_env_float("CNN_LENS_MAX_COMPRESSION_RATIO", cls.max_compression_ratio),
            max_weight_bytes=int(_env_float("CNN_LENS_MAX_WEIGHTS_MB", cls.max_weight_bytes / MB) * MB),
        )


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return float(default)
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"The environment variable {name}={raw!r} must be a number.") from None
    if not value > 0:
        raise ValueError(f"The environment variable {name}={raw!r} must be positive.")
    return value


def check_suffix(path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        raise UnsafeModelError(
            f"{path.name}: legacy HDF5 model files are refused, because their config can carry code that is hard "
            "to check. Re-save the model in the Keras 3 format: `model.save('name.keras')`."
        )
    if suffix != ".keras":
        raise UnsafeModelError(
            f"{path.name}: only Keras 3 `.keras` files are accepted (save with `model.save('name.keras')`). "
            "SavedModel folders and pickles are refused because loading them can run code."
        )


def _check_entry(info: zipfile.ZipInfo, label: str, limits: Limits) -> None:
    name = info.filename
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts or "\\" in name:
        raise UnsafeModelError(f"{label}: refused, the archive entry {name!r} points outside the archive.")
    if "\x00" in name:
        raise UnsafeModelError(f"{label}: refused, the archive entry {name!r} has a NUL byte in its name.")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise UnsafeModelError(f"{label}: refused, the archive entry {name!r} is a symbolic link.")
    if info.flag_bits & 0x1:
        raise UnsafeModelError(f"{label}: refused, the archive entry {name!r} is encrypted.")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise UnsafeModelError(f"{label}: refused, the archive entry {name!r} uses an unexpected compression method.")
    allowed = name in ALLOWED_ENTRIES or name.startswith(ALLOWED_PREFIXES) or (info.is_dir() and name == "assets/")
    if not allowed:
        raise UnsafeModelError(
            f"{label}: refused, unexpected entry {name!r} in a .keras archive "
            f"(expected {', '.join(sorted(ALLOWED_ENTRIES))} and assets/)."
        )
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > MB and ratio > limits.max_compression_ratio:
        raise UnsafeModelError(
            f"{label}: refused, {name!r} expands {ratio:.0f}x when unpacked (limit {limits.max_compression_ratio:.0f}x); "
            "this looks like a zip bomb."
        )


def check_archive(path: str | Path, limits: Limits | None = None) -> dict[str, Any]:
    """Validate the zip container and return the parsed ``config.json``; nothing is unpacked to disk."""
    path = Path(path)
    limits = limits or Limits.from_env()
    check_suffix(path)
    if not path.is_file():
        raise ModelLoadError(f"No such model file: {path.name}")
    size = path.stat().st_size
    if size > limits.max_file_bytes:
        raise UnsafeModelError(
            f"{path.name} is {size / MB:.0f} MB; the limit is {limits.max_file_bytes / MB:.0f} MB "
            "(CNN_LENS_MAX_MODEL_MB)."
        )
    if not zipfile.is_zipfile(path):
        raise ModelLoadError(
            f"{path.name} is not a zip archive (or it is cut short), so it is not a Keras model. "
            "Save it with `model.save('name.keras')` and upload the whole file again."
        )
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            if len(infos) > limits.max_entries:
                raise UnsafeModelError(f"{path.name}: refused, the archive has {len(infos)} entries.")
            seen: set[str] = set()
            total = 0
            for info in infos:
                _check_entry(info, path.name, limits)
                if info.filename in seen:
                    raise UnsafeModelError(f"{path.name}: refused, the archive holds {info.filename!r} twice.")
                seen.add(info.filename)
                total += info.file_size
            if total > limits.max_uncompressed_bytes:
                raise UnsafeModelError(
                    f"{path.name}: refused, it expands to {total / MB:.0f} MB "
                    f"(limit {limits.max_uncompressed_bytes / MB:.0f} MB, CNN_LENS_MAX_UNCOMPRESSED_MB)."
                )
            if "config.json" not in seen:
                raise ModelLoadError(f"{path.name} has no config.json: it is not a Keras 3 model file.")
            info = archive.getinfo("config.json")
            if info.file_size > limits.max_config_bytes:
                raise UnsafeModelError(f"{path.name}: refused, its config.json is {info.file_size / MB:.0f} MB.")
            raw = archive.read("config.json")
            if "metadata.json" in seen:
                if archive.getinfo("metadata.json").file_size > limits.max_config_bytes:
                    raise UnsafeModelError(f"{path.name}: refused, its metadata.json is oversized.")
                _parse_json(archive.read("metadata.json"), path.name, "metadata.json")
    except zipfile.BadZipFile as exc:
        raise ModelLoadError(f"{path.name} is a damaged zip archive ({exc}); save the model again.") from exc
    except (EOFError, OSError, zipfile.LargeZipFile, NotImplementedError) as exc:
        raise ModelLoadError(f"{path.name} could not be read as a zip archive ({exc}); save the model again.") from exc
    config = _parse_json(raw, path.name, "config.json")
    if not isinstance(config, dict):
        raise ModelLoadError(f"{path.name}: its config.json does not describe a model.")
    return config


def _parse_json(raw: bytes, label: str, entry: str) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ModelLoadError(f"{label}: its {entry} is not valid JSON.") from exc


def _walk(node: Any, where: str = "config", depth: int = 0) -> Iterator[tuple[str, Any]]:
    if depth > 200:
        raise UnsafeModelError(f"refused, the config is nested more than 200 levels deep ({where}).")
    yield where, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{where}.{key}", depth + 1)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{where}[{i}]", depth + 1)


def _in_keras(module: str) -> bool:
    return module == "keras" or module.startswith("keras.")


def _check_node(node: dict[str, Any], where: str, label: str) -> None:
    cls = node.get("class_name")
    module = node.get("module")
    if cls in FORBIDDEN_CLASSES:
        kind = "lambda function" if cls == "__lambda__" else f"{cls} layer"
        raise UnsafeModelError(
            f"{label}: refused, it contains a {kind} ({where}). It can run arbitrary code when loaded; "
            "rebuild the model with built-in Keras layers only."
        )
    if module is not None and (not isinstance(module, str) or not _in_keras(module)):
        raise UnsafeModelError(
            f"{label}: refused, it references code from module {module!r} ({where}). "
            "Only built-in Keras objects are accepted; custom objects are not loaded."
        )
    if cls == "function" or node.get("registered_name") == "function":
        if not (isinstance(module, str) and module.startswith(FUNCTION_MODULES)):
            raise UnsafeModelError(
                f"{label}: refused, it references the function {node.get('config')!r} from {module!r} ({where}); "
                "only functions from keras.activations are accepted."
            )
    elif "class_name" in node and node.get("registered_name") not in (None, cls):
        raise UnsafeModelError(
            f"{label}: refused, it uses the custom registered object {node.get('registered_name')!r} ({where}). "
            "Only built-in Keras objects are accepted."
        )
    config = node.get("config")
    if isinstance(config, dict):
        for key in VOCABULARY_KEYS & set(config):
            if isinstance(config[key], str):
                raise UnsafeModelError(
                    f"{label}: refused, its {cls or 'layer'} reads {key}={config[key]!r} from a file or URL "
                    f"({where}). Pass the vocabulary as a list instead."
                )


def check_config(config: dict[str, Any], filename: str = "model") -> None:
    """Refuse layers and references that could run code or read files, anywhere in the config tree."""
    if "enable_unsafe_deserialization" in json.dumps(config):
        raise UnsafeModelError(
            f"{filename}: refused, it references enable_unsafe_deserialization, which would switch off safe loading."
        )
    for where, node in _walk(config):
        if isinstance(node, dict):
            for key in node:
                if "enable_unsafe_deserialization" in str(key):
                    raise UnsafeModelError(
                        f"{filename}: refused, it references enable_unsafe_deserialization ({where})."
                    )
            _check_node(node, where, filename)
        elif isinstance(node, str) and "enable_unsafe_deserialization" in node:
            raise UnsafeModelError(f"{filename}: refused, it references enable_unsafe_deserialization ({where}).")


def check_weights(path: str | Path, limits: Limits | None = None) -> int:
    """Sum the bytes every dataset in ``model.weights.h5`` declares, reading headers only; refuse past the cap.

    Returns the declared total. An HDF5 dataset can claim a huge shape while storing nothing,
    and Keras would allocate the whole of it on load.
    """
    import h5py

    path = Path(path)
    limits = limits or Limits.from_env()
    with zipfile.ZipFile(path) as archive:
        if WEIGHTS_ENTRY not in archive.namelist():
            return 0
        stored = archive.getinfo(WEIGHTS_ENTRY).file_size
        cap = min(limits.max_weight_bytes, max(int(stored * limits.max_compression_ratio), MB))
        total = 0
        try:
            with archive.open(WEIGHTS_ENTRY) as raw, h5py.File(raw, "r") as h5:
                pending: list[Any] = [h5]
                count = 0
                while pending:
                    group = pending.pop()
                    for key in group:
                        link = group.get(key, getlink=True)
                        if not isinstance(link, h5py.HardLink):
                            raise UnsafeModelError(f"{path.name}: refused, its weights file has a link {key!r}.")
                        item = group[key]
                        count += 1
                        if count > limits.max_entries:
                            raise UnsafeModelError(f"{path.name}: refused, its weights file has too many entries.")
                        if isinstance(item, h5py.Group):
                            pending.append(item)
                        elif isinstance(item, h5py.Dataset):
                            if item.dtype.kind not in "biufV" or item.dtype.itemsize > 16:
                                raise UnsafeModelError(
                                    f"{path.name}: refused, weight {item.name!r} has the non-numeric type {item.dtype}."
                                )
                            declared = int(item.dtype.itemsize)
                            for dim in item.shape or ():
                                declared *= int(dim)
                            total += declared
                            if total > cap:
                                raise UnsafeModelError(
                                    f"{path.name}: refused, weight {item.name!r} claims shape {item.shape} "
                                    f"({declared / MB:.0f} MB) and the weights would need more than {cap / MB:.0f} MB, "
                                    f"while the file stores {stored / MB:.1f} MB (CNN_LENS_MAX_WEIGHTS_MB)."
                                )
        except UnsafeModelError:
            raise
        except Exception as exc:  # h5py raises OSError, KeyError, ValueError... on damaged files
            raise ModelLoadError(f"{path.name}: its weights file is damaged ({type(exc).__name__}: {exc}).") from exc
    return total


def check_file(path: str | Path, limits: Limits | None = None, weights: bool = True) -> dict[str, Any]:
    """All the checks, in order; returns the parsed config. ``weights=False`` skips the HDF5 header read."""
    path = Path(path)
    limits = limits or Limits.from_env()
    config = check_archive(path, limits)
    check_config(config, path.name)
    if weights:
        check_weights(path, limits)
    return config
