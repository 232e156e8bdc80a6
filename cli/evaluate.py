"""``cnn-lens evaluate``: faithfulness metrics and sanity checks over many pictures, as CSV and JSON."""

from __future__ import annotations

NAME = "evaluate"
HELP = "score explanation methods over many pictures (deletion, insertion, MuFidelity, sanity) -> CSV + JSON"


def main(argv: list[str]) -> int:
    from interpret.evaluate import main as evaluate_main

    return evaluate_main(argv, prog="cnn-lens evaluate")
