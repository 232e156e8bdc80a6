"""Drive N concurrent sessions of the app on loopback and print what the server held.

    .venv/bin/python scripts/load_test.py --sessions 10 --uploads 4
    .venv/bin/python scripts/load_test.py --url http://127.0.0.1:8501 --sessions 10   # a server already running

Each session is its own browser context (own cookies, own Streamlit session) in one headless
Debian chromium driven by Playwright. ``--uploads`` of them upload their own tiny ``.keras``
model with their own class names; the rest use the bundled model. Every session waits for its
Explain page (top-5 chart and Grad-CAM overlay), then checks it shows its own model and none of
the other sessions' class names. Printed: sessions held, peak and final memory (RSS of the
server's whole process tree, upload workers included), live workers, errors, busy refusals.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
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
]


def tree_rss(root_pid: int) -> tuple[int, int]:
    """(bytes of RSS, number of processes) of ``root_pid`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/statm") as f:
                rss[int(entry)] = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total, count, todo = 0, 0, [root_pid]
    while todo:
        pid = todo.pop()
        if pid in rss:
            total += rss[pid]
            count += 1
        todo.extend(children.get(pid, []))
    return total, count


class MemoryWatch(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.peak_procs, self.stop = pid, 0, 0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            rss, procs = tree_rss(self.pid)
            self.peak, self.peak_procs = max(self.peak, rss), max(self.peak_procs, procs)
            time.sleep(0.25)


@dataclass
class Session:
    index: int
    model_file: Path | None
    class_names: list[str] = field(default_factory=list)
    held: bool = False
    isolated: bool = False
    busy: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


def make_models(count: int, folder: Path) -> list[tuple[Path, list[str]]]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    out = []
    for i in range(count):
        keras.utils.set_random_seed(100 + i)
        model = keras.Sequential(
            [
                keras.Input((32, 32, 3)),
                keras.layers.Conv2D(4, 3, activation="relu", name="conv1"),
                keras.layers.Conv2D(6, 3, activation="relu", name="conv2"),
                keras.layers.GlobalAveragePooling2D(),
                keras.layers.Dense(3, activation="softmax"),
            ]
        )
        path = folder / f"session{i}.keras"
        model.save(path)
        out.append((path, [f"s{i}alpha", f"s{i}beta", f"s{i}gamma"]))
    return out


async def idle(page) -> None:
    """Wait until Streamlit has finished its current script run."""
    await page.wait_for_timeout(300)
    await page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || !document.querySelector('[data-testid=\"stStatusWidget\"]').innerText.includes('Running')"
    )


async def upload(page, path: Path, attempts: int = 3) -> None:
    """Put ``path`` in the sidebar's model uploader; try again if a rerun swallowed it."""
    for _ in range(attempts):
        await page.locator("[data-testid='stSidebar'] input[type='file']").first.set_input_files(str(path))
        await page.wait_for_timeout(1000)
        await idle(page)
        if path.name in await page.locator("[data-testid='stSidebar']").inner_text():
            return


async def drive(browser, url: str, s: Session, others: list[str], timeout_s: float) -> None:
    start = time.monotonic()
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    page.set_default_timeout(timeout_s * 1000)
    try:
        await page.goto(url)
        await page.wait_for_selector("[data-testid='stSidebar']")
        await idle(page)
        if s.model_file is not None:
            await page.get_by_text("Upload a .keras model").click()
            await idle(page)
            names = page.get_by_label("...or type class names, comma-separated")
            await names.fill(",".join(s.class_names))
            await names.press("Enter")
            await idle(page)
            await upload(page, s.model_file)
            expected = f"Model: {s.model_file.stem}."
        else:
            expected = "Model: "
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            text = await page.locator("[data-testid='stMain']").inner_text()
            sidebar = await page.locator("[data-testid='stSidebar']").inner_text()
            if "server is busy" in text + sidebar:
                s.busy += 1
                await page.wait_for_timeout(2000)
                await page.locator("[data-testid='stMain'] h1").first.click()
                await page.keyboard.press("r")  # Streamlit's rerun shortcut: try again, as a person would
                await idle(page)
                continue
            if expected in text and "for '" in text:
                break
            for box in await page.locator("[data-testid='stException'], [data-testid='stAlertContentError']").all():
                message = (await box.inner_text()).strip()
                if message and message not in s.errors:
                    s.errors.append(message[:300])
            if s.errors:
                return
            await page.wait_for_timeout(500)
        else:
            last = " | ".join((await page.locator("[data-testid='stMain']").inner_text()).split("\n"))[:300]
            s.errors.append(f"timed out after {timeout_s:.0f} s waiting for '{expected}'; the page showed: {last}")
            return
        s.held = True
        s.seconds = time.monotonic() - start
        text = await page.locator("[data-testid='stApp']").inner_text()
        mine = any(name in text for name in s.class_names) if s.class_names else True
        s.isolated = mine and not any(name in text for name in others)
        # Keep the session open until every session is done (they are all held at once).
        await asyncio.sleep(0)
    except Exception as exc:  # Playwright timeouts and navigation errors are reported, not raised
        s.errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
    finally:
        s.seconds = s.seconds or time.monotonic() - start
        s._context = context  # closed by the caller once all sessions finished


async def upload_series(browser, url: str, files: list[Path], timeout_s: float, pid: int | None) -> dict:
    """One session uploads ``files`` one after another, waiting for each model's Explain result."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    page.set_default_timeout(timeout_s * 1000)
    out: dict = {"done": 0, "errors": [], "rss": []}
    await page.goto(url)
    await page.wait_for_selector("[data-testid='stSidebar']")
    await idle(page)
    await page.get_by_text("Upload a .keras model").click()
    await idle(page)
    for path in files:
        try:
            await upload(page, path)
            await page.get_by_text(f"Model: {path.stem}.").wait_for()
            out["done"] += 1
        except Exception as exc:
            out["errors"].append(f"{path.name}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
        if pid:
            out["rss"].append(tree_rss(pid))
    await context.close()
    return out


async def main_async(args: argparse.Namespace, url: str, sessions: list[Session]) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        if args.in_a_row:
            args.series = await upload_series(browser, url, args.series_files, args.timeout, args.pid)
            await browser.close()
            return
        all_names = {s.index: s.class_names for s in sessions}
        tasks = []
        for s in sessions:
            others = [n for i, names in all_names.items() if i != s.index for n in names]
            tasks.append(drive(browser, url, s, others, args.timeout))
            await asyncio.sleep(args.stagger)
        await asyncio.gather(*tasks)
        for s in sessions:
            await s._context.close()
        await browser.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int, log: Path) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app/main.py",
        f"--server.port={port}",
        "--server.address=127.0.0.1",
        "--server.headless=true",
    ]
    server = subprocess.Popen(cmd, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    import urllib.request

    for _ in range(240):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.read() == b"ok":
                    return server
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise SystemExit(f"the server did not start; see {log}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--uploads", type=int, default=None, help="sessions that upload their own model (default N/2)")
    parser.add_argument("--url", default=None, help="a running app; default: start one on a free loopback port")
    parser.add_argument("--pid", type=int, default=None, help="the running server's pid, to measure its memory")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds each session may take")
    parser.add_argument(
        "--in-a-row", type=int, default=0, help="instead: one session uploads this many models in a row"
    )
    parser.add_argument("--stagger", type=float, default=0.5, help="seconds between opening sessions")
    args = parser.parse_args()
    uploads = args.sessions // 2 if args.uploads is None else min(args.uploads, args.sessions)
    folder = Path(tempfile.mkdtemp(prefix="cnn-lens-load-"))
    models = make_models(max(uploads, args.in_a_row), folder)
    args.series_files = [path for path, _ in models[: args.in_a_row]]
    sessions = [
        Session(i, models[i][0] if i < uploads else None, models[i][1] if i < uploads else [])
        for i in range(args.sessions)
    ]
    server = None
    if args.url:
        url, pid = args.url, args.pid
    else:
        port = free_port()
        log = ROOT / "artifacts" / "load-test-server.log"
        log.parent.mkdir(exist_ok=True)
        server = start_server(port, log)
        url, pid = f"http://127.0.0.1:{port}", server.pid
    args.pid = pid
    watch = MemoryWatch(pid) if pid else None
    if watch:
        base, _ = tree_rss(pid)
        watch.start()
    started = time.monotonic()
    try:
        asyncio.run(main_async(args, url, sessions))
    finally:
        wall = time.monotonic() - started
        final = tree_rss(pid) if pid else (0, 0)
        if watch:
            watch.stop.set()
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
    if args.in_a_row:
        series = args.series
        print(f"uploads in a row: {series['done']}/{args.in_a_row} drawn their result, wall {wall:.0f} s")
        if series["rss"]:
            every = max(1, len(series["rss"]) // 10)
            marks = ", ".join(
                f"#{i + 1}: {rss / 1e6:.0f} MB/{procs}p"
                for i, (rss, procs) in enumerate(series["rss"])
                if (i + 1) % every == 0
            )
            print(f"server tree RSS after uploads: {marks}")
            print(f"peak {watch.peak / 1e6:.0f} MB ({watch.peak_procs} processes at most), start {base / 1e6:.0f} MB")
        print(f"errors: {len(series['errors'])}")
        for message in series["errors"][:20]:
            print(f"  {message}")
        sys.exit(0 if series["done"] == args.in_a_row else 1)
    held = sum(s.held for s in sessions)
    print(f"sessions: {args.sessions} ({uploads} uploading their own model), wall {wall:.0f} s")
    print(f"sessions held (own result drawn): {held}/{args.sessions}")
    print(f"isolation (own model shown, no other session's class names): {sum(s.isolated for s in sessions)}/{held}")
    if watch:
        print(
            f"server tree RSS: start {base / 1e6:.0f} MB, peak {watch.peak / 1e6:.0f} MB "
            f"({watch.peak_procs} processes at most), end {final[0] / 1e6:.0f} MB ({final[1]} processes)"
        )
    print(f"'server is busy' answers seen: {sum(s.busy for s in sessions)}")
    times = sorted(s.seconds for s in sessions if s.held)
    if times:
        print(f"time to result: median {times[len(times) // 2]:.0f} s, max {times[-1]:.0f} s")
    errors = [(s.index, e) for s in sessions for e in s.errors]
    print(f"errors: {len(errors)}")
    for index, message in errors:
        print(f"  session {index}: {message}")
    sys.exit(0 if held == args.sessions and not errors else 1)


if __name__ == "__main__":
    main()
