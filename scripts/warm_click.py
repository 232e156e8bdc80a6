"""Time a warm click on the Explain page: a new target class or method -> the new heatmap on screen.

    .venv/bin/python scripts/warm_click.py                      # starts the app on a free port
    .venv/bin/python scripts/warm_click.py --url http://127.0.0.1:8501 --models bundled
    .venv/bin/python scripts/warm_click.py --clicks 8 --models mobilenet_v2

For each model (the bundled Fashion-MNIST CNN, and the zoo's MobileNetV2 with random weights,
since ImageNet weights may not be downloadable), a headless Debian chromium driven by
Playwright picks the model and a sample picture, waits for the first heatmap, then clicks
through changes of the target class and of the method. A click's time runs from the click on
the option to the moment the overlay image has a new ``src`` (or caption) and has loaded; the time to the
end of the script run ("idle") is printed next to it. Per-click figures and the median per
model are printed. Methods are fast ones (Grad-CAM, saliency, guided backprop, Grad-CAM++),
so the figures show the page's own cost rather than the method's; each is used once before
the timed clicks (its first use traces its compiled function: a cold cost, printed apart).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 300_000
# Choosing the zoo first asks for ImageNet weights; a closed proxy makes that download fail at
# once (offline, a hanging DNS lookup could otherwise hold the run) before "Random" is picked.
NO_DOWNLOADS = {
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "NO_PROXY": "127.0.0.1,localhost",
}
MAIN = "[data-testid='stMain']"
SIDEBAR = "[data-testid='stSidebar']"

# The overlay: the image whose caption reads "<method> for '<class>'", once loaded; as "caption | src",
# so that a new choice whose picture happens to be byte-identical (same src) is still seen.
OVERLAY_JS = """() => {
  const caps = Array.from(document.querySelectorAll("[data-testid='stMain'] [data-testid='stImageCaption']"));
  const cap = caps.find(c => c.innerText.includes(" for '"));
  if (!cap) return null;
  const img = cap.parentElement.querySelector("img");
  return img && img.complete && img.naturalWidth > 0 ? cap.innerText + " | " + img.src : null;
}"""
IDLE_JS = """() => {
  const w = document.querySelector("[data-testid='stStatusWidget']");
  return !w || !(w.innerText.includes('Stop') || w.innerText.includes('Running'));
}"""

# (what to change, option): a target by its position in the list (0 = the first class), a method by title.
BUNDLED_CLICKS = [
    ("Target class", 1),
    ("Target class", 3),
    ("Method", "Saliency (vanilla gradient)"),
    ("Target class", 0),
    ("Method", "Guided backprop"),
    ("Method", "Grad-CAM"),
    ("Target class", 5),
    ("Method", "Grad-CAM++"),
]
MOBILENET_CLICKS = [
    ("Target class", 1),
    ("Target class", 2),
    ("Target class", 3),
    ("Target class", 4),
    ("Target class", 5),
    ("Target class", 6),
    ("Target class", 7),
    ("Target class", 8),
]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def start_app(log_path: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "cli", "app", "--server.address=127.0.0.1", f"--server.port={port}"]
    log = open(log_path, "w")  # noqa: SIM115 (the server's log, kept open while it runs)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **NO_DOWNLOADS})
    deadline = time.monotonic() + 180
    while not healthy(url):
        if proc.poll() is not None:
            raise SystemExit(f"the app exited with code {proc.returncode}; see {log_path}")
        if time.monotonic() > deadline:
            proc.terminate()
            raise SystemExit(f"the app did not answer on {url} within 180 s; see {log_path}")
        time.sleep(0.5)
    return proc, url


def overlay_src(page) -> str | None:
    return page.evaluate(OVERLAY_JS)


def wait_new_overlay(page, old: str | None) -> str:
    handle = page.wait_for_function(
        f"(old) => {{ const src = ({OVERLAY_JS})(); return src && src !== old ? src : null; }}",
        arg=old,
        timeout=TIMEOUT_MS,
        polling="raf",
    )
    return handle.json_value()


def wait_idle(page) -> None:
    page.wait_for_selector("[data-testid='stApp']", timeout=TIMEOUT_MS)
    page.wait_for_function(IDLE_JS, timeout=TIMEOUT_MS)


def choose_radio(page, option: str) -> None:
    page.locator(f"{SIDEBAR} [data-testid='stRadio'] label", has_text=option).first.click()


def open_select(page, area: str, label: str):
    """Open the selectbox labelled ``label``; a rerun that redraws it meanwhile closes it, so try again."""
    box = page.locator(f"{area} [data-testid='stSelectbox']", has_text=label).first
    listbox = page.get_by_role("listbox")
    for attempt in range(5):
        wait_idle(page)
        box.click()
        try:
            listbox.wait_for(timeout=5_000)
            return listbox
        except Exception:
            if attempt == 4:
                raise
            page.keyboard.press("Escape")
    return listbox


def choose(page, area: str, label: str, option) -> tuple[float, str]:
    """Open the selectbox and click ``option`` (a title, or a position); return (moment of the click, its text)."""
    listbox = open_select(page, area, label)
    item = (
        listbox.get_by_role("option").nth(option)
        if isinstance(option, int)
        else page.get_by_role("option", name=option, exact=True)
    )
    item.wait_for()
    text = item.inner_text().strip()
    started = time.perf_counter()
    item.click()
    return started, text


def pick_sample(page, option: str, caption: str, old: str | None) -> str:
    choose(page, SIDEBAR, "Sample", option)
    page.get_by_text(f"Input: {caption}").wait_for(timeout=TIMEOUT_MS)
    return wait_new_overlay(page, old)


def current_option(page, label: str) -> str:
    box = page.locator(f"{MAIN} [data-testid='stSelectbox']", has_text=label).first
    return box.locator("input[role='combobox']").input_value().strip()


def warm_up(page, clicks: list[tuple[str, object]], old: str) -> str:
    """Use each method of ``clicks`` once (its first use traces its compiled function), then go back to Grad-CAM."""
    methods = [option for label, option in clicks if label == "Method" and option != "Grad-CAM"]
    for option in [*dict.fromkeys(methods), "Grad-CAM"]:
        if current_option(page, "Method") == option:
            continue
        started, text = choose(page, MAIN, "Method", option)
        old = wait_new_overlay(page, old)
        print(f"  (first use of {text}: {time.perf_counter() - started:.2f} s, not counted)", flush=True)
        wait_idle(page)
    return old


def measure(page, clicks: list[tuple[str, object]], old: str) -> list[tuple[str, float, float]]:
    old = warm_up(page, clicks, old)
    rows = []
    for label, option in clicks:
        wait_idle(page)
        before = current_option(page, label)
        started, text = choose(page, MAIN, label, option)
        if text == before:  # the same choice draws nothing new; skip it
            page.keyboard.press("Escape")
            continue
        old = wait_new_overlay(page, old)
        shown = time.perf_counter() - started
        wait_idle(page)
        idle = time.perf_counter() - started
        rows.append((f"{label}: {text}", shown, idle))
        print(f"  {label:>12} -> {text[:40]:<40} heatmap {shown:5.2f} s   run finished {idle:5.2f} s", flush=True)
    return rows


def run_bundled(page, clicks: int) -> list[float]:
    old = wait_new_overlay(page, None)
    wait_idle(page)
    old = pick_sample(page, "Fashion-MNIST · Trouser 1", "Trouser 1", old)
    return [shown for _, shown, _ in measure(page, BUNDLED_CLICKS[:clicks], old)]


def run_mobilenet(page, clicks: int) -> list[float]:
    old = wait_new_overlay(page, None)
    wait_idle(page)
    choose_radio(page, "ImageNet zoo")
    choose_radio(page, "Random (offline demo)")
    page.get_by_text("Input 224×224×3").wait_for(timeout=TIMEOUT_MS)
    old = wait_new_overlay(page, old)
    wait_idle(page)
    old = pick_sample(page, "Photo · coffee", "coffee", old)
    if "Grad-CAM for '" not in page.locator(MAIN).inner_text():
        choose(page, MAIN, "Method", "Grad-CAM")
        old = wait_new_overlay(page, old)
    return [shown for _, shown, _ in measure(page, MOBILENET_CLICKS[:clicks], old)]


RUNS = {"bundled": ("fashion-mnist-cnn", run_bundled), "mobilenet_v2": ("MobileNetV2 (weights=None)", run_mobilenet)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=None, help="an app already running (default: start one on a free port)")
    parser.add_argument("--models", default="bundled,mobilenet_v2", help=f"comma-separated: {', '.join(RUNS)}")
    parser.add_argument("--clicks", type=int, default=8, help="clicks per model (at most 8)")
    parser.add_argument("--chromium", default=CHROMIUM)
    parser.add_argument("--log", default=str(ROOT / "artifacts" / "warm-click-server.log"))
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in RUNS]
    if unknown:
        parser.error(f"unknown model {', '.join(unknown)}; choose from {', '.join(RUNS)}")

    from playwright.sync_api import sync_playwright

    proc = None
    url = args.url
    if url is None:
        Path(args.log).parent.mkdir(parents=True, exist_ok=True)
        proc, url = start_app(Path(args.log))
    medians: dict[str, float] = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS, headless=True)
            try:
                for name in models:
                    title, run = RUNS[name]
                    print(f"{title}:", flush=True)
                    context = browser.new_context(viewport={"width": 1400, "height": 1000})
                    page = context.new_page()
                    page.set_default_timeout(TIMEOUT_MS)
                    page.goto(url)
                    wait_idle(page)
                    times = run(page, args.clicks)
                    context.close()
                    if times:
                        medians[title] = statistics.median(times)
                        print(f"  median click -> new heatmap: {medians[title]:.2f} s over {len(times)} clicks")
            finally:
                browser.close()
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
    print("medians: " + ", ".join(f"{k} {v:.2f} s" for k, v in medians.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
