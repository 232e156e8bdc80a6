"""The server settings in app/streamlit_config.toml: safe values, option names Streamlit really has, and `cnn-lens app` passes them."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG_FILE = ROOT / "app" / "streamlit_config.toml"
CONFIG = tomllib.loads(CONFIG_FILE.read_text())


def test_safety_settings() -> None:
    server = CONFIG["server"]
    assert 1 <= server["maxUploadSize"] <= 500
    assert server["enableXsrfProtection"] is True and server["enableCORS"] is True
    assert server["enableStaticServing"] is False
    assert CONFIG["browser"]["gatherUsageStats"] is False
    assert CONFIG["client"]["showErrorDetails"] in ("type", "none")


def test_every_option_is_known_to_the_installed_streamlit() -> None:
    from streamlit import config

    known = set(config._config_options_template)
    names = [f"{section}.{key}" for section, options in CONFIG.items() for key in options]
    assert names
    assert [n for n in names if n not in known] == []


def test_upload_cap_is_not_above_the_model_checks_cap() -> None:
    from models.safety import Limits

    assert CONFIG["server"]["maxUploadSize"] * 1_000_000 <= Limits().max_file_bytes


def test_cnn_lens_app_passes_every_setting_to_streamlit_run() -> None:
    from cli import app

    cmd = app.command(["--server.port=8600"])
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4].endswith("app/main.py")
    assert app.CONFIG == CONFIG_FILE
    assert "--server.enableXsrfProtection=true" in cmd and "--client.showErrorDetails=type" in cmd
    assert len(cmd) == 5 + sum(len(options) for options in CONFIG.values()) + 1
    assert cmd[-1] == "--server.port=8600"  # the person's own options come last and win
