"""The built wheel alone is enough: its files, and `cnn-lens explain` run from it outside the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("cnn_lens-*.whl")
    return built


def test_the_wheel_holds_every_package_the_app_and_the_bundled_model(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in ("app", "app/views", "cli", "interpret", "interpret/metrics", "models", "serving"):
        assert f"{package}/__init__.py" in names or package == "app/views", package
    for needed in (
        "app/main.py",
        "app/views/explain.py",
        "app/streamlit_config.toml",
        "assets/models/fashion_mnist_cnn.keras",
        "assets/imagenet_classes.txt",
        "assets/samples/fashion/9_ankle-boot_1.png",
        "serving/worker.py",
    ):
        assert needed in names, needed
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "cnn-lens = cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    assert not any(n.startswith(("tests/", "benchmarks/", "scripts/")) for n in names)


@pytest.mark.slow
def test_cnn_lens_explain_runs_from_the_installed_wheel_outside_the_checkout(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    # -S: no site-packages processing, so the checkout's editable install is not seen; the
    # third-party packages come from this venv's site-packages, the project only from the wheel.
    env = {**os.environ, "PYTHONPATH": f"{target}{os.pathsep}{sysconfig.get_paths()['purelib']}"}
    sample = target / "assets" / "samples" / "fashion" / "9_ankle-boot_1.png"
    out = tmp_path / "boot.png"
    done = subprocess.run(
        [
            sys.executable,
            "-S",
            "-c",
            "import sys, cli, models; print(models.__file__); sys.exit(cli.main())",
            "explain",
            "--model",
            "fashion-mnist-cnn",
            "--image",
            str(sample),
            "--method",
            "gradcam",
            "--out",
            str(out),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Ankle boot" in done.stdout or "ankle" in done.stdout.lower()
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert done.stdout.splitlines()[0].startswith(str(target))  # the project came from the wheel, not the checkout
