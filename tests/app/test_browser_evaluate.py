"""Real browser (chromium through Playwright): open the Evaluate page and see the deletion and insertion curves.

Screenshots go to ``artifacts/screenshots/`` (git-ignored).
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

MAIN = "[data-testid='stMain']"


def test_evaluate_page_draws_the_curves(page, streamlit_server, screenshot_dir, wait_idle):
    link = page.locator("[data-testid='stSidebarNav']").get_by_role("link", name="Evaluate", exact=True)
    link.wait_for()
    link.click()
    page.get_by_role("heading", name="Can I trust this heatmap?").wait_for()
    plots = page.locator(f"{MAIN} .js-plotly-plot")
    try:
        plots.nth(2).wait_for(timeout=180_000)  # deletion, insertion, then the sanity-check similarity curve
        wait_idle(page)
    except Exception:
        page.screenshot(path=str(screenshot_dir / "evaluate_failure.png"), full_page=True)
        raise
    titles = [t.text_content() for t in page.locator(f"{MAIN} .js-plotly-plot .gtitle").all()]
    assert "Deletion: AUC, lower is better" in titles and "Insertion: AUC, higher is better" in titles
    for i in (0, 1):  # 4 default methods + the random and edge baselines, each a drawn line
        lines = plots.nth(i).locator(".scatterlayer .trace path.js-line")
        assert lines.count() == 6
        assert all(len(p.get_attribute("d") or "") > 20 for p in lines.all())
    legend = plots.nth(0).locator(".legend").text_content() or ""
    assert "Grad-CAM (AUC" in legend and "Random map (baseline)" in legend
    text = page.locator(MAIN).inner_text()
    assert "best at" in text and ("passes:" in text or "fails:" in text)
    page.set_viewport_size({"width": 1400, "height": 2600})
    page.screenshot(path=str(screenshot_dir / "evaluate_page.png"), full_page=True)
