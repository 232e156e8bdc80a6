"""``python -m interpret``: run as a person would, in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from interpret.images import read_image

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "assets" / "samples" / "fashion" / "9_ankle-boot_1.png"


def start(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen(
        [sys.executable, "-m", "interpret", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Start every CLI run at once (each pays TensorFlow's import), then collect them."""
    folder = tmp_path_factory.mktemp("cli")
    not_an_image = folder / "notes.png"
    not_an_image.write_text("hello, I am text\n", encoding="utf-8")
    big = folder / "boot_big.png"
    big.write_bytes(_png(np.repeat(np.repeat(read_image(SAMPLE), 3, 0), 2, 1)))  # 84 x 56
    jobs = {
        "gradcam": start(
            *("--model", "fashion-mnist-cnn", "--image", str(big), "--method", "gradcam"),
            *("--out", str(folder / "x.png"), "--npy", str(folder / "x.npy")),
        ),
        "occlusion": start(
            *("--image", str(SAMPLE), "--method", "occlusion", "--param", "patch=7", "--param", "stride=7"),
            *("--alpha", "0.7", "--out", str(folder / "occ.png"), "--npy", str(folder / "occ.npy")),
        ),
        "bad_image": start("--image", str(not_an_image), "--method", "gradcam", "--out", str(folder / "no.png")),
        "bad_model": start("--model", "no-such-model", "--image", str(SAMPLE), "--out", str(folder / "no2.png")),
    }
    results = {}
    for name, proc in jobs.items():
        out, err = proc.communicate(timeout=300)
        results[name] = (proc.returncode, out, err)
    return folder, results


def _png(image: np.ndarray) -> bytes:
    from interpret.images import encode_png

    return encode_png(image)


def test_cli_writes_the_overlay_at_the_pictures_size(runs):
    """An ankle boot enlarged to a non-square 84 x 56 picture: the overlay and the map keep that size."""
    folder, results = runs
    code, out, err = results["gradcam"]
    assert code == 0, err[-2000:]
    assert "Grad-CAM" in out and "class 9" in out and "block3_relu2" in out and str(folder / "x.png") in out
    overlay = read_image(folder / "x.png")
    assert overlay.shape == (84, 56, 3) and overlay.dtype == np.uint8
    heat = np.load(folder / "x.npy")
    assert heat.shape == (84, 56) and heat.dtype == np.float32 and np.all(np.isfinite(heat)) and heat.max() > 0


def test_cli_draws_a_signed_map_as_the_explain_page_does(runs):
    """Occlusion is signed: coolwarm, opaque by strength (render.signed_overlay), not a plain jet overlay."""
    from interpret import METHODS
    from interpret.render import method_overlay, overlay, signed_overlay

    folder, results = runs
    code, out, err = results["occlusion"]
    assert code == 0, err[-2000:]
    drawn = read_image(folder / "occ.png")
    picture, heat = read_image(SAMPLE), np.load(folder / "occ.npy")
    assert heat.min() < 0 < heat.max()  # a signed map
    np.testing.assert_array_equal(drawn, signed_overlay(picture, heat, alpha=0.7, cmap="coolwarm"))
    np.testing.assert_array_equal(
        drawn, method_overlay(METHODS["occlusion"], picture, heat, alpha=0.7, cmap="coolwarm")
    )
    assert np.abs(drawn.astype(int) - overlay(picture, heat, alpha=0.7, cmap="jet", signed=True)).mean() > 10


def last_line(text: str) -> str:
    """TensorFlow prints its own start-up notices on stderr first; ours is the last line."""
    return text.strip().splitlines()[-1]


def test_cli_bad_image_exits_2_with_a_clear_message(runs):
    folder, results = runs
    code, _, err = results["bad_image"]
    assert code == 2
    assert last_line(err).startswith("error: notes.png is not an image")
    assert "Traceback" not in err
    assert not (folder / "no.png").exists()


def test_cli_unknown_model_exits_2_and_lists_the_choices(runs):
    _, results = runs
    code, _, err = results["bad_model"]
    assert code == 2
    assert last_line(err).startswith("error: Unknown model 'no-such-model'") and "fashion-mnist-cnn" in err
    assert "Traceback" not in err
