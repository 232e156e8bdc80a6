"""The Dockerfile, checked without a Docker engine: its steps against the repository, and its entry command run for real."""

from __future__ import annotations

import json
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    current = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        current += " " + line[:-1] if line.endswith("\\") else " " + line
        if not line.endswith("\\"):
            word, _, rest = current.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            current = ""
    return out


def args_of(name: str) -> list[str]:
    return [rest for word, rest in instructions() if word == name]


def exec_form(rest: str) -> list[str]:
    assert rest.startswith("["), f"use the exec form (JSON array): {rest}"
    return json.loads(rest)


def test_base_image_is_python_311_slim() -> None:
    assert args_of("FROM") == ["python:3.11-slim"]


def test_runs_as_a_non_root_user_created_in_the_image() -> None:
    users = args_of("USER")
    assert users and users[-1] not in ("root", "0", "0:0")
    assert any("useradd" in rest and users[-1] in rest for rest in args_of("RUN"))
    order = [word for word, _ in instructions()]
    assert order.index("USER") < order.index("CMD")


def test_every_copy_source_exists_and_is_not_docker_ignored() -> None:
    ignored = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    copies = args_of("COPY")
    assert copies
    for rest in copies:
        parts = [p for p in shlex.split(rest) if not p.startswith("--")]
        for source in parts[:-1]:
            assert (ROOT / source).exists(), f"COPY source {source} is missing"
            assert source.rstrip("/") not in ignored, f"{source} is excluded by .dockerignore"
    for needed in ("app", "cli", "serving", "interpret", "models", "assets", "pyproject.toml", "requirements.txt"):
        assert any(needed in rest for rest in copies), f"{needed} is not copied"
    assert {".venv", ".git", "tests"} <= ignored


def test_pip_installs_the_requirements_file_and_the_gpu_variant_swaps_tensorflow(tmp_path: Path) -> None:
    runs = " ".join(args_of("RUN"))
    files = [f.rstrip(";") for f in re.findall(r"pip install[^;&]*?-r\s+(\S+)", runs)]
    assert "requirements.txt" in files
    for name in files:
        assert name.startswith("/tmp/") or (ROOT / name).is_file(), name
    assert "ARG TF_PACKAGE=tensorflow-cpu" in DOCKERFILE.read_text()
    assert '"$TF_PACKAGE"' in runs
    # The GPU branch's filter, run on the real requirements.txt: TensorFlow goes, the rest stays.
    pattern = re.search(r"grep -v -E '([^']+)' requirements.txt", runs).group(1)
    kept = subprocess.run(
        ["grep", "-v", "-E", pattern, str(ROOT / "requirements.txt")], capture_output=True, text=True, check=True
    ).stdout
    packages = [line.split(">")[0].split("=")[0].split(";")[0].strip() for line in kept.splitlines()]
    packages = [p for p in packages if p and not p.startswith("#")]
    assert not [p for p in packages if p.startswith("tensorflow")]
    original = [
        line for line in (ROOT / "requirements.txt").read_text().splitlines() if line and not line.startswith("#")
    ]
    assert len(packages) == len(original) - sum(line.startswith("tensorflow") for line in original)
    assert {"keras", "streamlit", "pillow"} <= set(packages)


def _entry() -> list[str]:
    (cmd,) = args_of("CMD")
    return exec_form(cmd)


def test_entry_command_matches_the_app_and_the_readme_script() -> None:
    cmd = _entry()
    assert cmd[:2] == ["cnn-lens", "app"]
    assert "--server.port=8501" in cmd and "--server.address=0.0.0.0" in cmd
    assert args_of("EXPOSE") == ["8501"]
    assert any(rest.startswith("pip install --no-deps .") for rest in args_of("RUN"))  # cnn-lens is installed
    run_app = (ROOT / "scripts" / "run-app.sh").read_text()
    assert "cnn-lens app" in run_app  # the README's way to start the app runs the same command
    readme = (ROOT / "README.md").read_text()
    for published in re.findall(r"docker run[^\n]*-p\s+(\d+):(\d+)", readme):
        assert published[1] == "8501"


def test_healthcheck_asks_streamlits_health_endpoint() -> None:
    (check,) = args_of("HEALTHCHECK")
    assert "/_stcore/health" in check and "8501" in check
    assert "CMD" in check


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_entry_command_starts_and_answers_health(tmp_path: Path) -> None:
    """The container's command (its flags, with a free port on loopback) starts the app for real."""
    port = _free_port()
    entry = _entry()
    assert entry[0] == "cnn-lens"
    cmd = [sys.executable, "-m", "cli", *entry[1:]]  # the console script's own entry point, cli:main
    cmd = [
        f"--server.port={port}"
        if part.startswith("--server.port=")
        else "--server.address=127.0.0.1"
        if part.startswith("--server.address=")
        else part
        for part in cmd
    ]
    server = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        body = b""
        while time.monotonic() < deadline:
            if server.poll() is not None:
                pytest.fail(f"streamlit exited: {server.stdout.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    body = r.read()
                    break
            except OSError:
                time.sleep(0.5)
        assert body == b"ok"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
            assert r.status == 200
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
