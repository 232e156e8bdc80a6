"""``cnn-lens``: one command with a subcommand per job.

    cnn-lens app [streamlit options]      start the web app on the bundled default model
    cnn-lens explain --image boot.png ... write one explanation overlay (same as ``python -m interpret``)
    cnn-lens evaluate --dataset ...       faithfulness metrics over many pictures -> CSV + JSON
    cnn-lens batch --data ... --out DIR   explanations over a whole dataset (local or Ray) -> Parquet + JSON
    cnn-lens train --data fashion-mnist   train a CNN (conv blocks or transfer) and save it as .keras

Each subcommand is a module of this package with ``NAME``, ``HELP`` and ``main(argv) -> int``;
adding one (``batch``, ``evaluate``, ``train``) is a module and a line in ``SUBCOMMANDS``.
"""

from __future__ import annotations

import importlib
import sys

SUBCOMMANDS = ("app", "explain", "evaluate", "batch", "train")


def usage() -> str:
    rows = [f"  {name:<10} {importlib.import_module(f'cli.{name}').HELP}" for name in SUBCOMMANDS]
    return "usage: cnn-lens <command> [options]\n\ncommands:\n" + "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage(), end="")
        return 0
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        print(f"cnn-lens: unknown command {name!r}.\n\n{usage()}", end="", file=sys.stderr)
        return 2
    return int(importlib.import_module(f"cli.{name}").main(rest) or 0)
