"""Real browser: a student uploads Teachable Machine's converted_keras.zip and explains a picture with it."""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _project(tmp_path: Path) -> bytes:
    import h5_fixtures as fx

    # a Teachable-Machine-shaped Keras 2 file at a size the sample photos suit
    h5 = fx.save_h5(fx.teachable_like(input_shape=(32, 32, 3)), tmp_path / "keras_model.h5", keras2=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.write(h5, "keras_model.h5")
        z.writestr("labels.txt", "0 Cat\n1 Dog\n2 Bird\n")
    return buf.getvalue()


def test_upload_a_teachable_machine_zip_and_explain(page, wait_idle, screenshot_dir, tmp_path):
    page.locator(
        "[data-testid='stSidebar'] [data-testid='stRadio'] label", has_text="Upload a .keras model"
    ).first.click()
    uploader = page.locator("[data-testid='stSidebar'] [data-testid='stFileUploader']").first
    uploader.locator("input[type='file']").set_input_files(
        files=[{"name": "converted_keras.zip", "mimeType": "application/zip", "buffer": _project(tmp_path)}]
    )
    page.get_by_text("Input 32×32×3, 3 classes.").wait_for(timeout=300_000)
    page.get_by_text("Grad-CAM for '").wait_for(timeout=300_000)
    wait_idle(page)
    assert page.get_by_text("A Teachable Machine project: its input scaling is -1..1.").is_visible()
    caption = page.locator(
        "[data-testid='stMain'] [data-testid='stImageCaption']", has_text="Grad-CAM for '"
    ).inner_text()
    assert any(f"'{name}'" in caption for name in ("Cat", "Dog", "Bird")), caption
    assert page.locator("[data-testid='stException']").count() == 0
    page.screenshot(path=str(screenshot_dir / "teachable-machine-upload.png"), full_page=True)
