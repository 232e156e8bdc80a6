"""Imports go one way, ``app -> serving -> interpret -> models``, and Streamlit is imported only in ``app/``.

Every import statement of every module counts, lazy ones inside functions included, and so
does ``importlib.import_module("...")`` with a literal name.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("models", "interpret", "serving", "app")  # each may import only those before it


def imported_names(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def violations(package: str, root: Path = ROOT) -> list[str]:
    allowed_above = set(LAYERS[LAYERS.index(package) + 1 :])
    out = []
    for path in sorted((root / package).rglob("*.py")):
        for line, name in sorted(imported_names(ast.parse(path.read_text(), str(path)))):
            top = name.split(".")[0]
            if top in allowed_above or top == "cli" or (top == "streamlit" and package != "app"):
                out.append(f"{path.relative_to(root)}:{line} imports {name}")
    return out


@pytest.mark.parametrize("package", LAYERS)
def test_no_import_against_the_direction(package: str) -> None:
    assert violations(package) == []


def test_the_check_sees_lazy_and_dynamic_imports(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "bad.py").write_text(
        "import numpy\n"
        "def f():\n"
        "    from serving import wire\n"
        "    import app.sidebar\n"
        "    importlib.import_module('interpret.core')\n"
        "    import streamlit as st\n"
    )
    assert violations("models", tmp_path) == [
        "models/bad.py:3 imports serving",
        "models/bad.py:4 imports app.sidebar",
        "models/bad.py:5 imports interpret.core",
        "models/bad.py:6 imports streamlit",
    ]
