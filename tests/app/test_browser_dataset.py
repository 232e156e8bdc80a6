"""Real browser (chromium through Playwright): the Dataset page's confusion matrix, a chosen cell, its gallery."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MAIN = "[data-testid='stMain']"
CLASSES = 10  # the bundled Fashion-MNIST model


def test_choose_a_confusion_cell_and_see_its_pictures(page, streamlit_server, screenshot_dir, wait_idle):
    link = page.locator("[data-testid='stSidebarNav']").get_by_role("link", name="Dataset", exact=True)
    link.wait_for()
    link.click()
    page.get_by_role("heading", name="Confusion matrix").wait_for()
    wait_idle(page)
    plot = page.locator(f"{MAIN} .js-plotly-plot").first
    plot.wait_for()
    main = page.locator(MAIN)
    assert "Accuracy" in main.inner_text()
    page.screenshot(path=str(screenshot_dir / "dataset_page.png"), full_page=True)

    # click the cell (Trouser, Trouser): row 1, column 1 of the 10 x 10 grid, found by its hover label
    page.set_viewport_size({"width": 1400, "height": 2000})  # the whole matrix on screen
    plot.scroll_into_view_if_needed()
    wait_idle(page)
    area = plot.locator(".nsewdrag").first.bounding_box()
    label = ""
    for dx in (1.5, 1.3, 1.7, 1.1, 1.9):
        x = area["x"] + area["width"] * dx / CLASSES
        y = area["y"] + area["height"] * 1.5 / CLASSES
        page.mouse.move(x, y)
        page.wait_for_timeout(300)
        hover = page.locator(".hoverlayer .hovertext")
        label = hover.first.text_content() if hover.count() else ""
        if label.startswith("true Trouser, predicted Trouser"):
            break
    assert label.startswith("true Trouser, predicted Trouser"), label
    page.mouse.click(x, y)
    caption = main.get_by_text(re.compile(r"^[\d,]+ pictures of Trouser predicted as Trouser"))
    caption.wait_for()
    wait_idle(page)
    gallery = main.get_by_text(re.compile(r"^Trouser \d+% · true: Trouser$"))
    gallery.first.wait_for()
    expect(gallery).to_have_count(12, timeout=60_000)  # the gallery fills in as its heatmaps arrive
    page.wait_for_function(  # picture + heatmap, two galleries
        "() => document.querySelectorAll(\"[data-testid='stMain'] [data-testid='stImage']\").length >= 48",
        timeout=60_000,
    )
    page.wait_for_timeout(3000)
    page.set_viewport_size({"width": 1400, "height": 3200})
    page.screenshot(path=str(screenshot_dir / "dataset_cell_gallery.png"), full_page=True)
