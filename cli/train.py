"""``cnn-lens train``: train a CNN (Build or Transfer) and save it as ``.keras`` (same as ``python -m models.train``)."""

from __future__ import annotations

NAME = "train"
HELP = "train a CNN (conv blocks or transfer learning) and save it as .keras"


def main(argv: list[str]) -> int:
    from models.train import main as train_main

    return train_main(argv, prog="cnn-lens train")
