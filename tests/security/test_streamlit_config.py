"""The server settings in .streamlit/config.toml: safe values, and option names Streamlit really has."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())


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
