"""Shared fixtures for the app's tests.

AppTest (no server, no browser):

- ``app_test``: a factory, ``app_test()`` -> a fresh ``AppTest`` of ``app/main.py`` with a
  generous timeout (the first run imports TensorFlow and loads a model). Call ``.run()``
  yourself; switch pages with ``at.switch_page("views/<file>.py")``.

Real browser (mark such tests ``@pytest.mark.browser``):

- ``streamlit_server`` (session): ``streamlit run app/main.py`` in a subprocess on a free
  loopback port; yields its base URL, e.g. ``http://127.0.0.1:40123``. Its log is written to
  ``artifacts/streamlit-server.log``. Downloads fail at once there (``NO_DOWNLOADS``: a closed proxy).
- ``browser`` (session): Debian's chromium (``/usr/bin/chromium``) launched through
  Playwright, headless. Playwright never downloads a browser here.
- ``page`` (per test): a fresh browser context and page, 1400x1000, already opened at the
  app and waited for until Streamlit has drawn it.
- ``screenshot_dir``: ``artifacts/screenshots/`` (git-ignored), created on demand. A browser
  test that fails leaves ``failed-<test name>.png`` there.
- ``wait_idle``: the function ``wait_for_app_idle(page)``, which waits until Streamlit has
  finished its current script run.

Tests are skipped (not failed) when chromium or Playwright is missing on the machine.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAIN = ROOT / "app" / "main.py"
ARTIFACTS = ROOT / "artifacts"
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
NO_DOWNLOADS = {
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "NO_PROXY": "127.0.0.1,localhost",
}
SERVER_START_TIMEOUT_S = 180
APP_TIMEOUT_S = 300  # AppTest run limit: TensorFlow import and model loading on a busy 2-core CPU


@pytest.fixture
def app_test() -> Callable:
    from streamlit.testing.v1 import AppTest

    class NavigationAppTest(AppTest):
        """AppTest whose reruns stay on the default page of ``st.navigation``.

        Streamlit 1.67's AppTest asks for the page hash the previous run finished on; for the
        default file page of ``st.navigation`` that request makes the rerun draw nothing
        (the script does not run again; widget changes are lost). Asking for no page, as a
        browser does on its first load, runs the default page. ``switch_page`` still works:
        it sets ``_page_hash``, which takes precedence.
        """

        def _run(self, widget_state=None, timeout: float | None = None) -> AppTest:
            # ``at.run()`` and ``widget.run()`` both end here.
            if not self._page_hash:
                self._finished_page_script_hash = ""
            return super()._run(widget_state, timeout=timeout)

    def make() -> AppTest:
        # (AppTest.from_file always builds a plain AppTest, so construct the subclass directly.)
        return NavigationAppTest(MAIN, default_timeout=APP_TIMEOUT_S)

    return make


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    path = ARTIFACTS / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def streamlit_server() -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / "streamlit-server.log", "w")  # noqa: SIM115 (closed below)
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(MAIN),
        "--server.address=127.0.0.1",
        f"--server.port={port}",
        "--server.headless=true",
        "--browser.gatherUsageStats=false",
        "--server.fileWatcherType=none",
        "--server.runOnSave=false",
    ]
    # Choosing the ImageNet zoo first asks for ImageNet weights: a closed proxy makes that download
    # fail at once (a test never downloads; offline, a stalled lookup could hold the run for minutes).
    env = {**os.environ, "PYTHONPATH": str(ROOT), **NO_DOWNLOADS}
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not _healthy(url):
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited with code {proc.returncode}; see {log.name}")
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not answer on {url} within {SERVER_START_TIMEOUT_S} s; see {log.name}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def wait_for_app_idle(page, timeout_s: float = APP_TIMEOUT_S) -> None:
    """Wait until Streamlit has finished its current script run (no 'running' status widget)."""
    page.wait_for_selector("[data-testid='stApp']", timeout=timeout_s * 1000)
    # While a run is going, the top bar shows the status widget with a running icon and "Stop".
    page.wait_for_function(
        """() => {
          const w = document.querySelector("[data-testid='stStatusWidget']");
          return !w || !(w.innerText.includes('Stop') || w.innerText.includes('Running'));
        }""",
        timeout=timeout_s * 1000,
    )


@pytest.fixture(scope="session")
def wait_idle() -> Callable:
    return wait_for_app_idle


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def page(request, browser, streamlit_server, screenshot_dir):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(APP_TIMEOUT_S * 1000)
    pg.goto(streamlit_server)
    wait_for_app_idle(pg)
    try:
        yield pg
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:  # what the browser showed when the test failed
            pg.screenshot(path=str(screenshot_dir / f"failed-{request.node.name}.png"), full_page=True)
        context.close()
