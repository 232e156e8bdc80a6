"""``cnn-lens explain``: one picture, one method, an overlay PNG (the library's own command line)."""

from __future__ import annotations

NAME = "explain"
HELP = "explain one picture with one method and write the overlay PNG"


def main(argv: list[str]) -> int:
    from interpret.__main__ import main as explain_main

    return explain_main(argv, prog="cnn-lens explain")
