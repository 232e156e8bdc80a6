"""Read class names from what a person has: a text file (one per line), JSON, or typed text."""

from __future__ import annotations

import json
from pathlib import Path

from models.errors import ModelLoadError

ASSETS = Path(__file__).resolve().parent.parent / "assets"
MAX_CLASS_NAME_BYTES = 1_000_000


def parse_class_names(text: str | bytes) -> list[str]:
    """JSON list, JSON {index: name} dict, or one name per line (commas if on one line)."""
    if isinstance(text, bytes):
        if len(text) > MAX_CLASS_NAME_BYTES:
            raise ModelLoadError("The class-name file is larger than 1 MB; expected one name per line.")
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ModelLoadError("The class-name file is not UTF-8 text.") from exc
    stripped = text.strip()
    if not stripped:
        return []
    if stripped[0] in "[{":
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ModelLoadError(
                f"The class names look like JSON but do not parse: {exc.msg} (line {exc.lineno})."
            ) from exc
        if isinstance(data, dict):
            try:
                items = sorted((int(k), v) for k, v in data.items())
            except ValueError as exc:
                raise ModelLoadError('A JSON class-name mapping needs integer keys: {"0": "cat", ...}.') from exc
            if [k for k, _ in items] != list(range(len(items))):
                raise ModelLoadError("A JSON class-name mapping must cover 0..K-1 without gaps.")
            data = [v if isinstance(v, str) else v[-1] for _, v in items]
        if not isinstance(data, list) or not all(isinstance(v, str) for v in data):
            raise ModelLoadError("JSON class names must be a list of strings or a {index: name} mapping.")
        return [v.strip() for v in data]
    lines = [line.strip() for line in stripped.splitlines()]
    if len(lines) == 1 and "," in lines[0]:
        lines = [part.strip() for part in lines[0].split(",")]
    return [line for line in lines if line]


def read_asset_names(filename: str) -> list[str]:
    return parse_class_names((ASSETS / filename).read_text(encoding="utf-8"))
