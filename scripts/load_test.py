"""Drive N concurrent sessions of the app on loopback and print what the server held.

    .venv/bin/python scripts/load_test.py --sessions 50 --uploads 10
    .venv/bin/python scripts/load_test.py --url http://127.0.0.1:8501 --pid 1234 --sessions 10   # a running server

Each session is its own browser context (own cookies, own Streamlit session) in one headless
Debian chromium driven by Playwright (one browser, many contexts: much lighter than one
browser per session). ``--uploads`` of them upload their own tiny ``.keras`` model with their
own class names; the rest use the bundled model. Every session waits for its Explain page
(top-5 chart and Grad-CAM overlay), then switches to its own method (the sessions cycle
through ``--methods``) and waits for that result, then checks it shows its own model and
none of the other sessions' class names. A "server is busy" answer is retried the way a
person would (Streamlit's rerun key, after 2 s); any other error counts as an error.

The server is started as ``cnn-lens app`` would start it (``app/streamlit_config.toml``:
no file watcher, the real upload cap). Printed: sessions held, time to result, busy
answers, errors, and the memory of the server's whole process tree (upload workers
included; ``--max-server-mb`` makes going over a failure) and of the browser.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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


def tree_pids(root_pid: int) -> list[int]:
    """``root_pid`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    children.setdefault(int(f.read().rsplit(")", 1)[1].split()[1]), []).append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    out, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def pss(pids: list[int]) -> int:
    """Proportional set size of ``pids`` together (shared pages counted once, unlike RSS sums)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            continue
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (its own threads, not its children)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


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
    """Peak RSS of the server's process tree, and of this script's own tree without the server (the browser)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.peak_procs, self.stop = pid, 0, 0, threading.Event()
        self.browser_peak, self.browser_procs = 0, 0
        self.cpu: dict[str, dict[int, float]] = {"server": {}, "browser": {}}  # last CPU seconds seen per pid
        self.load_peak = 0.0  # the machine's 1-minute load average (other people's work included)

    def run(self) -> None:
        tick = 0
        while not self.stop.is_set():
            rss, procs = tree_rss(self.pid)
            self.peak, self.peak_procs = max(self.peak, rss), max(self.peak_procs, procs)
            if tick % 8 == 0:  # the browser's PSS and everyone's CPU every 2 s (reading smaps is slower)
                server = tree_pids(self.pid)
                browser = [p for p in tree_pids(os.getpid()) if p not in set(server) and p != os.getpid()]
                self.browser_peak = max(self.browser_peak, pss(browser))
                self.browser_procs = max(self.browser_procs, len(browser))
                for kind, pids in (("server", server), ("browser", browser)):
                    for p in pids:
                        self.cpu[kind][p] = max(self.cpu[kind].get(p, 0.0), cpu_seconds(p))
                self.load_peak = max(self.load_peak, os.getloadavg()[0])
            tick += 1
            time.sleep(0.25)

    def cpu_used(self, kind: str) -> float:
        return sum(self.cpu[kind].values())


@dataclass
class Session:
    index: int
    model_file: Path | None
    class_names: list[str] = field(default_factory=list)
    method: str = "gradcam"
    held: bool = False
    isolated: bool = False
    busy: int = 0
    upload_tries: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # seconds from the start to each step's end


# Cheap and costly methods alike (the costly ones with their defaults: LIME 1000 samples, ...).
METHODS = (
    "gradcam,saliency,occlusion,integrated_gradients,guided_backprop,smoothgrad,gradcam_plus_plus,lime,cam,scorecam"
)


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


RUNNING = """() => {
  const w = document.querySelector("[data-testid='stStatusWidget']");
  return !!document.querySelector("[data-testid='stStatusWidgetRunningIcon']")
    || (!!w && (w.innerText.includes('Stop') || w.innerText.includes('Running')));
}"""


async def idle(page, settle_ms: int = 300) -> None:
    """Wait until Streamlit has finished its current script run.

    While a run goes, Streamlit 1.67 shows a running icon (aria-label "Running...", not text)
    and a "Stop" button; the icon is what to look for.
    """
    await page.wait_for_timeout(settle_ms)
    await page.wait_for_function(f"() => !({RUNNING})()")


async def after_action(page, start_timeout_ms: int = 3000) -> None:
    """After a click or a key: wait for the run it triggers to start (if it does soon), then to end."""
    with contextlib.suppress(Exception):  # the run was too quick to see, or none was needed
        await page.wait_for_function(RUNNING, timeout=start_timeout_ms)
    await idle(page)


async def upload(page, s: Session, timeout_s: float = 60.0) -> bool:
    """Put the session's model in the sidebar uploader and make sure the server received it.

    The uploader only shows the file once the server has answered the browser's request
    for an upload URL, and the file then travels in a PUT to /_stcore/upload_file. A try
    counts when that PUT succeeded; otherwise the page is reloaded (a fresh Streamlit
    session) and everything is chosen again.
    """
    path = s.model_file
    assert path is not None
    sidebar = page.locator("[data-testid='stSidebar']")
    for attempt in range(3):
        s.upload_tries += 1
        if attempt:
            await page.reload()
            await page.wait_for_selector("[data-testid='stSidebar']")
            await idle(page)
        await page.get_by_text("Upload a .keras model").click()
        await after_action(page)
        names = page.get_by_label("...or type class names, comma-separated")
        await names.fill(",".join(s.class_names))
        await names.press("Enter")
        await after_action(page)
        try:
            async with page.expect_response(
                lambda r: "/_stcore/upload_file/" in r.url and r.request.method == "PUT", timeout=timeout_s * 1000
            ) as put:
                await sidebar.locator("input[type='file']").first.set_input_files(str(path))
            if (await put.value).ok:
                await sidebar.get_by_text(path.name).wait_for(timeout=timeout_s * 1000)
                await after_action(page)
                return True
        except Exception:  # no upload URL came back, or the PUT failed: start again on a fresh page
            continue
    s.errors.append(f"the browser never sent {path.name} to the server in 3 tries")
    return False


async def wait_for(page, s: Session, expected: list[str], timeout_s: float) -> bool:
    """Wait until the main area shows every string of ``expected``; retry busy answers; record errors."""
    deadline = time.monotonic() + timeout_s
    main, sidebar = page.locator("[data-testid='stMain']"), page.locator("[data-testid='stSidebar']")
    while time.monotonic() < deadline:
        text = await main.inner_text()
        if "server is busy" in text + await sidebar.inner_text():
            s.busy += 1
            await page.wait_for_timeout(2000)
            await main.locator("h1, h2").first.click()
            await page.keyboard.press("r")  # Streamlit's rerun shortcut: try again, as a person would
            await after_action(page)
            continue
        if all(e in text for e in expected) and not await page.evaluate(RUNNING):
            return True
        for box in await page.locator("[data-testid='stException'], [data-testid='stAlertContentError']").all():
            message = (await box.inner_text()).strip()
            if message and "server is busy" not in message and message not in s.errors:
                s.errors.append(message[:300])
        if s.errors:
            return False
        await page.wait_for_timeout(500)
    last = " | ".join((await main.inner_text()).split("\n"))[:300]
    s.errors.append(f"timed out after {timeout_s:.0f} s waiting for {expected}; the page showed: {last}")
    return False


async def choose_method(page, title: str) -> None:
    await page.locator("[data-testid='stSelectbox']").filter(has_text="Method").first.click()
    await page.get_by_role("option", name=title, exact=True).click()
    await after_action(page)


async def drive(browser, url: str, s: Session, others: list[str], timeout_s: float) -> None:
    from interpret import METHODS as REGISTRY

    start = time.monotonic()
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    s._context = context  # closed by the caller once all sessions finished
    page = await context.new_page()
    page.set_default_timeout(timeout_s * 1000)
    try:
        await page.goto(url)
        await page.wait_for_selector("[data-testid='stSidebar']")
        await idle(page)
        s.phases["page"] = time.monotonic() - start
        if s.model_file is not None:
            if not await upload(page, s):
                return
            s.phases["upload"] = time.monotonic() - start
            model = f"Model: {s.model_file.stem}."
        else:
            model = "Model: "
        if not await wait_for(page, s, [model, "Grad-CAM for '"], timeout_s - (time.monotonic() - start)):
            return
        s.phases["gradcam"] = time.monotonic() - start
        if s.method != "gradcam":
            title = REGISTRY[s.method].title
            await choose_method(page, title)
            if not await wait_for(page, s, [model, f"{title} for '"], timeout_s - (time.monotonic() - start)):
                return
        s.phases["method"] = time.monotonic() - start
        s.held = True
        s.seconds = time.monotonic() - start
        text = await page.locator("[data-testid='stApp']").inner_text()
        mine = any(name in text for name in s.class_names) if s.class_names else True
        s.isolated = mine and not any(name in text for name in others)
        # The session stays open (its context is closed at the end): all sessions are held at once.
    except Exception as exc:  # Playwright timeouts, navigation errors, a crashed page: reported, not raised
        s.errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
    finally:
        s.seconds = s.seconds or time.monotonic() - start


async def upload_series(browser, url: str, files: list[Path], timeout_s: float, pid: int | None) -> dict:
    """One session uploads ``files`` one after another, waiting for each model's Explain result."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    page.set_default_timeout(timeout_s * 1000)
    out: dict = {"done": 0, "errors": [], "rss": []}
    await page.goto(url)
    await page.wait_for_selector("[data-testid='stSidebar']")
    await idle(page)
    for i, path in enumerate(files):
        try:
            s = Session(i, path, [f"s{i}alpha", f"s{i}beta", f"s{i}gamma"])
            if not await upload(page, s):
                raise RuntimeError("; ".join(s.errors))
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
            context = getattr(s, "_context", None)
            if context is not None:
                await context.close()
        await browser.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int, log: Path) -> subprocess.Popen:
    """``cnn-lens app`` on a loopback port: the project's server settings, no file watcher."""
    sys.path.insert(0, str(ROOT))
    from cli import app

    cmd = app.command([f"--server.port={port}", "--server.address=127.0.0.1"])
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
    parser.add_argument("--methods", default=METHODS, help="comma-separated methods the sessions cycle through")
    parser.add_argument("--max-server-mb", type=float, default=0, help="fail when the server tree's peak is above")
    args = parser.parse_args()
    uploads = args.sessions // 2 if args.uploads is None else min(args.uploads, args.sessions)
    folder = Path(tempfile.mkdtemp(prefix="cnn-lens-load-"))
    models = make_models(max(uploads, args.in_a_row), folder)
    args.series_files = [path for path, _ in models[: args.in_a_row]]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    sessions = [
        Session(
            i, models[i][0] if i < uploads else None, models[i][1] if i < uploads else [], methods[i % len(methods)]
        )
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
    over = False
    if watch:
        print(
            f"server tree RSS: start {base / 1e6:.0f} MB, peak {watch.peak / 1e6:.0f} MB "
            f"({watch.peak_procs} processes at most), end {final[0] / 1e6:.0f} MB ({final[1]} processes)"
        )
        print(
            f"browser (chromium + Playwright driver) PSS: peak {watch.browser_peak / 1e6:.0f} MB "
            f"({watch.browser_procs} processes at most)"
        )
        print(
            f"CPU seconds used: server tree {watch.cpu_used('server'):.0f} (upload workers included), "
            f"browser {watch.cpu_used('browser'):.0f}, this script {cpu_seconds(os.getpid()):.0f}; "
            f"{os.cpu_count()} cores, 1-minute load average up to {watch.load_peak:.1f}"
        )
        if args.max_server_mb:
            over = watch.peak > args.max_server_mb * 1e6
            print(f"server tree peak {'ABOVE' if over else 'within'} the bound of {args.max_server_mb:.0f} MB")
    by_method: dict[str, list[int]] = {}
    for s in sessions:
        by_method.setdefault(s.method, [0, 0])[0] += s.held
        by_method[s.method][1] += 1
    print("held per method: " + ", ".join(f"{m} {h}/{n}" for m, (h, n) in by_method.items()))
    print(f"'server is busy' answers seen: {sum(s.busy for s in sessions)}")
    retried = [s.index for s in sessions if s.upload_tries > 1]
    print(f"uploads that needed a fresh page: {len(retried)} {retried if retried else ''}".rstrip())
    times = sorted(s.seconds for s in sessions if s.held)
    if times:
        print(f"time to result: median {times[len(times) // 2]:.0f} s, max {times[-1]:.0f} s")
        steps = []
        for phase in ("page", "upload", "gradcam", "method"):
            ends = sorted(s.phases[phase] for s in sessions if phase in s.phases)
            if ends:
                steps.append(f"{phase} {ends[len(ends) // 2]:.0f}/{ends[-1]:.0f}")
        print("seconds from a session's start to the end of each step (median/max): " + ", ".join(steps))
    errors = [(s.index, e) for s in sessions for e in s.errors]
    print(f"errors: {len(errors)}")
    for index, message in errors:
        print(f"  session {index}: {message}")
    sys.exit(0 if held == args.sessions and not errors and not over else 1)


if __name__ == "__main__":
    main()
