"""Generate ``config.json`` texts built to make a config checker slow: long keys over long lists, deep nesting, wide dicts.

Each builder returns the JSON text (a ``str``); ``bomb_file`` packs one into an otherwise valid
``.keras`` archive (stored, not deflated, so the zip-bomb ratio cap does not step in first).
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import hostile_models as hostile

MB = 1_000_000


def _in_model(value: str) -> str:
    """``value`` (JSON text) as the layer list of an otherwise plain Sequential config."""
    return '{"module": "keras", "class_name": "Sequential", "config": {"layers": ' + value + "}}"


def long_key_over_long_list(key_bytes: int = 2 * MB, items: int = 400_000) -> str:
    """The case that kept the old checker busy 57 s: one 2 MB key whose value is a 400,000-item list."""
    return '{"class_name": "Sequential", "config": {"' + "k" * key_bytes + '": [' + ",".join(["0"] * items) + "]}}"


def deep_list_over_wide_list(depth: int = 90, items: int = 400_000) -> str:
    """A wide list at the bottom of a deep nesting (under the JSON parser's own recursion limit)."""
    return _in_model("[" * depth + ",".join(["0"] * items) + "]" * depth)


def very_deep(depth: int = 900) -> str:
    """Nested lists deeper than any model but still within what ``json.loads`` can parse."""
    return _in_model("[" * depth + "]" * depth)


def deeper_than_the_parser(depth: int = 200_000) -> str:
    """Nesting ``json.loads`` itself cannot follow (it raises RecursionError)."""
    return _in_model("[" * depth + "]" * depth)


def huge_flat_dict(megabytes: float = 4.5) -> str:
    """One dict with as many short keys as fit in ``megabytes`` (about 12 bytes a key)."""
    count = int(megabytes * MB / 12)
    return _in_model("{" + ",".join(f'"{i:07d}":0' for i in range(count)) + "}")


def many_object_nodes(megabytes: float = 4.5) -> str:
    """A Sequential whose layer list holds as many tiny layer nodes as fit in ``megabytes``."""
    node = '{"module":"keras.layers","class_name":"ReLU","config":{},"registered_name":null}'
    count = int(megabytes * MB / (len(node) + 1))
    return '{"module":"keras","class_name":"Sequential","config":{"layers":[' + ",".join([node] * count) + "]}}"


def huge_integer(digits: int = 100_000) -> str:
    """A number with more digits than Python turns into an int by default (ValueError, not JSONDecodeError)."""
    return '{"class_name": "Sequential", "config": {"seed": ' + "7" * digits + "}}"


BOMBS: dict[str, Callable[[], str]] = {
    "2 MB key over a 400,000-item list": long_key_over_long_list,
    "400,000-item list 90 levels deep": deep_list_over_wide_list,
    "900 levels of nesting": very_deep,
    "200,000 levels of nesting": deeper_than_the_parser,
    "huge flat dict": huge_flat_dict,
    "many small layer nodes": many_object_nodes,
    "100,000-digit number": huge_integer,
}


def bomb_file(folder: Path, name: str, text: str) -> Path:
    """An otherwise valid ``.keras`` archive whose ``config.json`` is ``text``."""
    _, metadata, weights = hostile._base()
    path = folder / f"{name}.keras"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("metadata.json", metadata)
        z.writestr("config.json", text)
        z.writestr("model.weights.h5", weights)
    return path
