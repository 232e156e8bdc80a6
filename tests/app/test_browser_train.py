"""Real browser: a student trains a CNN on the Train page, watches the curve grow, stops it, and explains it.

Screenshots go to artifacts/screenshots/train-*.png: the settings, the running curve, the results, the
misclassified test pictures with Grad-CAM, and the Explain page on the trained model.
"""

from __future__ import annotations

import re
import time

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]
TRAIN_TIMEOUT_S = 300


def slider_to(page, label: str, presses: list[str]) -> None:
    thumb = page.locator("[data-testid='stMain'] [data-testid='stSlider']", has_text=label).get_by_role("slider")
    thumb.focus()
    for key in presses:
        thumb.press(key)


def points(page) -> int:
    text = page.locator(
        "[data-testid='stMain'] [data-testid='stCaptionContainer']", has_text="points:"
    ).first.inner_text()
    return int(re.match(r"(\d+) points", text).group(1))


def test_train_watch_the_curve_grow_stop_and_explain(page, wait_idle, screenshot_dir):
    page.get_by_role("link", name="Train").click()
    page.get_by_text("1. Data").wait_for()
    page.get_by_text("Parameters").first.wait_for()
    wait_idle(page)
    slider_to(page, "Training pictures", ["Home", "ArrowRight", "ArrowRight", "ArrowRight"])  # 5,000
    wait_idle(page)
    slider_to(page, "Test pictures", ["Home"])  # 200
    wait_idle(page)
    epochs = page.get_by_label("Epochs", exact=True)
    epochs.fill("10")
    epochs.press("Enter")
    wait_idle(page)
    page.get_by_text("Flip", exact=True).click()  # augmentation: the preview grid changes
    wait_idle(page)
    page.screenshot(path=str(screenshot_dir / "train-settings.png"), full_page=True)

    started = time.perf_counter()
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("points: training loss").wait_for(timeout=TRAIN_TIMEOUT_S * 1000)
    page.wait_for_function(
        """() => Array.from(document.querySelectorAll("[data-testid='stCaptionContainer']"))
                 .some(c => /^([3-9]|\\d\\d+) points/.test(c.innerText))""",
        timeout=TRAIN_TIMEOUT_S * 1000,
    )
    first = points(page)
    page.wait_for_function(
        """(n) => Array.from(document.querySelectorAll("[data-testid='stCaptionContainer']"))
                 .some(c => { const m = c.innerText.match(/^(\\d+) points/); return m && +m[1] > n + 3; })""",
        arg=first,
        timeout=120_000,
    )
    later = points(page)
    assert later > first  # the curve grows while the epoch runs
    assert page.locator("[data-testid='stMain'] [data-testid='stPlotlyChart']").count() >= 1
    print(f"\nfirst curve points after {time.perf_counter() - started:.1f} s; {first} -> {later} points")
    page.get_by_text("points: training loss").scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot_dir / "train-running.png"), full_page=True)

    page.get_by_role("button", name="Stop").click()
    page.get_by_text("Test accuracy", exact=True).wait_for(timeout=TRAIN_TIMEOUT_S * 1000)
    page.get_by_text("Confusion matrix").wait_for()
    page.locator("[data-testid='stImageCaption']", has_text="said").first.wait_for()  # mistakes with Grad-CAM
    wait_idle(page)
    assert page.get_by_text("stopped by you").count() >= 1
    page.get_by_text("Results on the test set").scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot_dir / "train-results.png"), full_page=True)
    page.locator("[data-testid='stImageCaption']", has_text="said").first.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot_dir / "train-mistakes.png"), full_page=True)

    page.get_by_role("button", name="Explain this model").click()
    page.get_by_text("Explain a prediction").wait_for()
    page.get_by_text("Grad-CAM for '").wait_for(timeout=TRAIN_TIMEOUT_S * 1000)
    wait_idle(page)
    trained = page.locator(
        "[data-testid='stSidebar'] [data-testid='stRadio'] label", has_text="Trained in this session"
    )
    assert trained.locator("input").is_checked()
    assert page.get_by_text("Model: Trained CNN").is_visible()
    assert page.locator("[data-testid='stException']").count() == 0
    page.screenshot(path=str(screenshot_dir / "train-explain.png"), full_page=True)
