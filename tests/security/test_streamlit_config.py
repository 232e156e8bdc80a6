"""The server settings in app/streamlit_config.toml: safe values, option names Streamlit really has, and `cnn-lens app` passes them."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG_FILE = ROOT / "app" / "streamlit_config.toml"
CONFIG = tomllib.loads(CONFIG_FILE.read_text())


def test_safety_settings() -> None:
    server = CONFIG["server"]
    assert 1 <= server["maxUploadSize"] <= 2_000
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


STREAMLIT_MB = 1024 * 1024  # Streamlit's server.maxUploadSize unit (its upload route: maxUploadSize * 1024 * 1024)


def test_streamlit_counts_the_upload_cap_in_mebibytes() -> None:
    import inspect

    from streamlit.web.server.starlette import starlette_routes

    assert 'get_option("server.maxUploadSize") * 1024 * 1024' in inspect.getsource(starlette_routes)


def test_upload_cap_equals_the_model_checks_cap_and_fits_vgg16(monkeypatch) -> None:
    """Every model Streamlit lets through is looked at by the check, and nothing the check allows is cut off."""
    from models.safety import Limits

    monkeypatch.delenv("CNN_LENS_MAX_MODEL_MB", raising=False)
    upload_cap = CONFIG["server"]["maxUploadSize"] * STREAMLIT_MB
    assert upload_cap == Limits().max_file_bytes == Limits.from_env().max_file_bytes
    assert upload_cap >= 600_000_000  # VGG16 with ImageNet weights is about 530 MB as .keras


def test_cnn_lens_app_passes_every_setting_to_streamlit_run() -> None:
    from cli import app

    cmd = app.command(["--server.port=8600"])
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4].endswith("app/main.py")
    assert app.CONFIG == CONFIG_FILE
    assert "--server.enableXsrfProtection=true" in cmd and "--client.showErrorDetails=type" in cmd
    assert len(cmd) == 5 + sum(len(options) for options in CONFIG.values()) + 1
    assert cmd[-1] == "--server.port=8600"  # the person's own options come last and win
