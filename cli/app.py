"""``cnn-lens app``: start the Streamlit app on the bundled default model, with the server settings for a class.

The settings live in ``app/streamlit_config.toml`` (installed with the package) and are
passed to ``streamlit run`` as options, so they apply wherever the command is started;
options given on the command line come after them and win.
"""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path

NAME = "app"
HELP = "start the web app (extra options go to streamlit run, e.g. --server.port=8502)"
APP_DIR = Path(__file__).resolve().parent.parent / "app"
CONFIG = APP_DIR / "streamlit_config.toml"


def _flag(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def server_options(config: Path = CONFIG) -> list[str]:
    """``--section.option=value`` for every setting in the config file."""
    settings = tomllib.loads(config.read_text())
    return [
        f"--{section}.{key}={_flag(value)}" for section, options in settings.items() for key, value in options.items()
    ]


def command(argv: list[str]) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(APP_DIR / "main.py"), *server_options(), *argv]


def main(argv: list[str]) -> int:
    cmd = command(argv)
    os.execv(cmd[0], cmd)  # the server replaces this process: signals and exit codes are Streamlit's
    return 0
