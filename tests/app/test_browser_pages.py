"""Real-browser tests (chromium through Playwright): the Compare grid, the Filters and Top patches pages.

Screenshots go to ``artifacts/screenshots/`` (git-ignored).
"""

from __future__ import annotations

import io

import pytest
from PIL import Image

pytestmark = pytest.mark.browser

MAIN = "[data-testid='stMain']"


def open_page(page, title: str, header: str, wait_idle) -> None:
    """Click the page in the sidebar's navigation, as a person does, and wait for it to be drawn."""
    # Wait for the app's own navigation (drawn by st.navigation in app/main.py) before clicking.
    link = page.locator("[data-testid='stSidebarNav']").get_by_role("link", name=title, exact=True)
    link.wait_for()
    link.click()
    page.get_by_role("heading", name=header).wait_for()
    wait_idle(page)


def test_compare_grid_draws_and_exports(page, streamlit_server, screenshot_dir, wait_idle):
    open_page(page, "Compare", "Compare methods and classes", wait_idle)
    images = page.locator(f"{MAIN} [data-testid='stImage']")
    try:
        images.nth(11).wait_for(timeout=120_000)
    except Exception:
        page.screenshot(path=str(screenshot_dir / "compare_grid_failure.png"), full_page=True)
        raise
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stProgress\"]')")
    assert images.count() == 4 * 3  # 4 methods x (input + top-2 classes)
    main_text = page.locator(MAIN).inner_text()
    for title in ("Guided backprop", "Grad-CAM", "Guided Grad-CAM", "Occlusion"):
        assert title in main_text
    page.set_viewport_size({"width": 1400, "height": 2400})  # Streamlit scrolls inside: make room for the grid
    page.screenshot(path=str(screenshot_dir / "compare_grid.png"), full_page=True)

    with page.expect_download() as download:
        page.get_by_role("button", name="Download grid (PNG)").click()
    png = Image.open(io.BytesIO(download.value.path().read_bytes()))
    assert png.format == "PNG" and png.size[0] > 300 and png.size[1] > 300
    png.save(screenshot_dir / "compare_grid_export.png")

    page.get_by_text("Shared by the classes of a method").click()
    wait_idle(page)
    assert images.count() == 12
    page.screenshot(path=str(screenshot_dir / "compare_grid_shared_scale.png"), full_page=True)

    page.get_by_text("Deletion and insertion AUCs under each panel").click()  # the optional row of AUCs
    page.locator(MAIN).get_by_text("Petsiuk et al. 2018").wait_for(timeout=120_000)
    wait_idle(page)
    assert page.locator(MAIN).inner_text().count("deletion AUC") == 4 * 2  # one under each panel
    page.screenshot(path=str(screenshot_dir / "compare_grid_aucs.png"), full_page=True)


def hover_text(page, plot) -> str:
    """Move the mouse over the middle of a plotly chart and read its hover label."""
    box = plot.locator(".nsewdrag").first.bounding_box()
    for fy in (0.5, 0.3, 0.7, 0.1, 0.9):
        for fx in (0.05, 0.3, 0.5, 0.7):
            page.mouse.move(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
            page.wait_for_timeout(200)
            label = page.locator(".hoverlayer .hovertext")
            if label.count():
                return label.first.text_content() or ""
    return ""


def test_filters_page_shows_tiles_with_hover_values(page, streamlit_server, screenshot_dir, wait_idle):
    open_page(page, "Filters", "Filters", wait_idle)
    plot = page.locator(f"{MAIN} .js-plotly-plot").first
    plot.wait_for()
    assert "16 filters of 3x3x1" in page.locator(MAIN).inner_text()  # the bundled model's first layer
    text = hover_text(page, plot)
    assert "filter" in text and "weight" in text
    page.screenshot(path=str(screenshot_dir / "filters_bundled.png"), full_page=True)

    # an RGB model: the zoo's MobileNetV2 with random weights (no download)
    page.get_by_text("ImageNet zoo").click()
    page.get_by_text("Random (offline demo)").click()
    page.locator(MAIN).get_by_text("32 filters of 3x3x3").wait_for()
    wait_idle(page)
    text = hover_text(page, page.locator(f"{MAIN} .js-plotly-plot").first)
    assert "filter" in text and "R " in text and "B " in text
    page.screenshot(path=str(screenshot_dir / "filters_mobilenet_rgb.png"), full_page=True)


def test_top_patches_search_the_test_set(page, streamlit_server, screenshot_dir, wait_idle):
    open_page(page, "Top patches", "Top-activating patches", wait_idle)
    page.locator(MAIN).get_by_text("Searched 20 pictures of the sample pictures").wait_for()  # the page is drawn
    wait_idle(page)
    page.locator(MAIN).get_by_text("Fashion-MNIST test set (10,000 pictures)").click()
    page.locator(MAIN).get_by_text("Searched 10,000 pictures of the Fashion-MNIST test set").wait_for(timeout=120_000)
    wait_idle(page)
    captions = page.locator(f"{MAIN} [data-testid='stImageCaption']")
    assert captions.count() == 8 and " at (" in captions.first.inner_text()
    page.screenshot(path=str(screenshot_dir / "top_patches_test_set.png"), full_page=True)


def test_activations_show_the_strongest_pictures_of_a_channel(page, streamlit_server, screenshot_dir, wait_idle):
    open_page(page, "Activations", "Activation maps", wait_idle)
    page.get_by_role("heading", name="The pictures where this channel is strongest").wait_for()
    page.locator(MAIN).get_by_text("Searched 20 pictures of the sample pictures").wait_for(timeout=120_000)
    wait_idle(page)
    ranked = page.locator(MAIN).get_by_text(": peak ")
    assert ranked.count() == 6
    page.set_viewport_size({"width": 1400, "height": 2600})
    page.screenshot(path=str(screenshot_dir / "activations_strongest.png"), full_page=True)
