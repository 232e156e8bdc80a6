"""Check an uploaded ``.keras`` file before Keras reads a byte of it.

An uploaded model is a program: a ``Lambda`` layer carries Python bytecode, a module
reference can name ``os``, and a zip archive can be a bomb. The archive and its
``config.json`` are inspected here first; only then is the file loaded, with
``safe_mode=True, compile=False``.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from models.errors import ModelLoadError, UnsafeModelError

MAX_FILE_BYTES = int(500e6)
MAX_UNCOMPRESSED_BYTES = int(2e9)
MAX_COMPRESSION_RATIO = 100.0
MAX_CONFIG_BYTES = int(20e6)
ALLOWED_ENTRIES = {"config.json", "metadata.json", "model.weights.h5"}
ALLOWED_PREFIXES = ("assets/",)
FORBIDDEN_CLASSES = {"Lambda", "TFSMLayer"}


def check_archive(path: str | Path) -> dict[str, Any]:
    """Validate the zip container; return the parsed ``config.json``."""
    path = Path(path)
    if path.suffix.lower() != ".keras":
        raise UnsafeModelError(
            f"{path.name}: only Keras 3 `.keras` files are accepted (save with `model.save('name.keras')`). "
            "SavedModel folders and pickles are refused because loading them can run code."
        )
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise UnsafeModelError(f"{path.name} is {size / 1e6:.0f} MB; the limit is {MAX_FILE_BYTES / 1e6:.0f} MB.")
    if not zipfile.is_zipfile(path):
        raise ModelLoadError(f"{path.name} is not a Keras model: a `.keras` file is a zip archive, and this is not one.")
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            total = 0
            for info in infos:
                name = info.filename
                if name.startswith("/") or ".." in Path(name).parts or "\\" in name:
                    raise UnsafeModelError(f"{path.name}: refused, the archive entry {name!r} points outside the archive.")
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise UnsafeModelError(f"{path.name}: refused, the archive entry {name!r} is a symbolic link.")
                if name not in ALLOWED_ENTRIES and not name.startswith(ALLOWED_PREFIXES):
                    raise UnsafeModelError(f"{path.name}: refused, unexpected entry {name!r} in a .keras archive.")
                total += info.file_size
                ratio = info.file_size / max(info.compress_size, 1)
                if info.file_size > 1_000_000 and ratio > MAX_COMPRESSION_RATIO:
                    raise UnsafeModelError(f"{path.name}: refused, {name!r} expands {ratio:.0f}x (a zip bomb?).")
            if total > MAX_UNCOMPRESSED_BYTES:
                raise UnsafeModelError(
                    f"{path.name}: refused, it expands to {total / 1e9:.1f} GB (limit {MAX_UNCOMPRESSED_BYTES / 1e9:.0f} GB)."
                )
            if "config.json" not in {i.filename for i in infos}:
                raise ModelLoadError(f"{path.name} has no config.json: it is not a Keras 3 model file.")
            info = archive.getinfo("config.json")
            if info.file_size > MAX_CONFIG_BYTES:
                raise UnsafeModelError(f"{path.name}: refused, its config.json is {info.file_size / 1e6:.0f} MB.")
            raw = archive.read("config.json")
    except zipfile.BadZipFile as exc:
        raise ModelLoadError(f"{path.name} is a damaged zip archive ({exc}); save the model again.") from exc
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{path.name}: its config.json is not valid JSON.") from exc


def _walk(node: Any, where: str = "config") -> Iterator[tuple[str, dict]]:
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            yield from _walk(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{where}[{i}]")


def check_config(config: dict[str, Any], filename: str = "model") -> None:
    """Refuse layers and references that could run code, anywhere in the config tree."""
    for where, node in _walk(config):
        cls = node.get("class_name")
        if cls in FORBIDDEN_CLASSES:
            raise UnsafeModelError(
                f"{filename}: refused, it contains a {cls} layer ({where}). {cls} layers can run arbitrary code; "
                "rebuild the model with built-in layers only."
            )
        module = node.get("module")
        if isinstance(module, str) and module != "keras" and not module.startswith("keras."):
            raise UnsafeModelError(
                f"{filename}: refused, it references code from module {module!r} ({where}). "
                "Only built-in Keras layers are accepted; custom objects are not loaded."
            )
        registered = node.get("registered_name")
        if isinstance(registered, str) and cls and registered != cls and "class_name" in node and module is not None:
            raise UnsafeModelError(
                f"{filename}: refused, it uses the custom registered object {registered!r} ({where})."
            )
        for key, value in node.items():
            if isinstance(value, str) and "enable_unsafe_deserialization" in value:
                raise UnsafeModelError(f"{filename}: refused, it references enable_unsafe_deserialization ({where}).")
