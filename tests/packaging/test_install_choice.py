"""The install step picks TensorFlow's CUDA build when `nvidia-smi -L` sees a GPU, the CPU build otherwise."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "scripts" / "install.sh"


def which_tensorflow(path: str) -> str:
    env = {**os.environ, "PATH": path}
    done = subprocess.run(
        ["/bin/bash", str(INSTALL), "--which-tensorflow"], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def stub_nvidia_smi(folder: Path, exit_code: int, output: str = "") -> str:
    folder.mkdir()
    stub = folder / "nvidia-smi"
    stub.write_text(f'#!/bin/sh\n[ "$1" = "-L" ] || exit 64\nprintf "%s\\n" "{output}"\nexit {exit_code}\n')
    stub.chmod(0o755)
    return f"{folder}:/usr/bin:/bin"


def test_a_visible_gpu_gets_the_cuda_build(tmp_path: Path) -> None:
    path = stub_nvidia_smi(tmp_path / "gpu", 0, "GPU 0: NVIDIA H200 (UUID: GPU-1234)")
    assert which_tensorflow(path) == "tensorflow[and-cuda]>=2.18"


@pytest.mark.parametrize("exit_code", [6, 9])  # driver present but no device / no driver loaded
def test_nvidia_smi_that_fails_gets_the_cpu_build(tmp_path: Path, exit_code: int) -> None:
    path = stub_nvidia_smi(tmp_path / "nogpu", exit_code, "NVIDIA-SMI has failed")
    assert which_tensorflow(path) == "cpu"


def test_no_nvidia_smi_gets_the_cpu_build(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert which_tensorflow(f"{empty}:/usr/bin:/bin") == "cpu"


def test_both_readme_commands_go_through_the_install_step() -> None:
    for script in ("run-app.sh", "run-tests.sh"):
        assert "bash scripts/install.sh" in (ROOT / "scripts" / script).read_text()
    # "cpu" leaves the choice to requirements.txt, which names the CPU build on Linux x86_64.
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    assert any(line.startswith("tensorflow-cpu") and 'sys_platform == "linux"' in line for line in lines)
