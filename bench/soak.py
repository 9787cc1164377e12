"""Memory soak: many visitors, one server; its memory must level off, not grow with them.

    python bench/soak.py --data PATH [--sessions 40] [--checkpoints checkpoints]

Starts the dashboard as a poster session would (`streamlit run app.py`, the shipped runs),
then lets `--sessions` visitors come and go one after another in headless Chromium, each in
a fresh browser context (a new Streamlit session): visitor i picks run i (cycling through
every run), opens one of Classify (with an upload of its own), Confusion, Channels,
Embeddings or Saliency, waits for the page to be drawn, and leaves. After each visitor the
server's resident memory is read from /proc (the server and its children: the upload
decoder's workers and analysis jobs).

The caches are bounded (`max_entries`, pages/_cache.py and the pages), so once
every run and page has been seen the memory should stay flat. Prints the memory after each
visitor and the growth over the second half of the visitors (warm) to the end;
handled = a visitor's page was drawn without an exception box.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["Classify", "Confusion", "Channels", "Embeddings", "Saliency"]
CHROMIUM = os.environ.get("TINYVIZ_CHROMIUM", "/usr/bin/chromium")
WAIT_MS = 300_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data: str, checkpoints: Path, runs: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,
        "TINYVIZ_DATA": data,
        "TINYVIZ_CHECKPOINTS": str(checkpoints),
        "TINYVIZ_RUNS_DIR": str(runs),
    }
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true"]
    cmd += ["--server.port", str(port), "--browser.gatherUsageStats", "false"]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("error: the dashboard did not start within a minute")


def rss_mb(pid: int) -> float:
    """Resident memory of `pid` and all its descendants, in MB (from /proc)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(next(x for x in status.splitlines() if x.startswith("VmRSS")).split()[1])
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except (OSError, StopIteration):
            continue
        todo += [int(k) for k in kids]
    return total / 1024


def photo(seed: int) -> bytes:
    """A visitor's own picture: a different 320 x 240 JPEG each time."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def settled(page) -> bool:
    """Wait for the script run to end; True when no exception box was drawn."""
    state = "[data-testid=stApp][data-test-script-state={}]"
    with contextlib.suppress(Exception):  # it may have finished before we looked
        page.locator(state.format("running")).wait_for(timeout=3000)
    page.locator(state.format("notRunning")).wait_for()
    return page.locator("[data-testid=stException]").count() == 0


def choose_run(page, index: int) -> str:
    """Pick the run at `index` (cycling) in the sidebar's Run box; returns its label."""
    box = page.locator("[data-testid=stSidebar] [data-testid=stSelectbox]").filter(has_text="Run")
    box.first.click()
    options = page.get_by_role("option")
    options.first.wait_for()
    option = options.nth(index % options.count())
    label = option.inner_text()
    option.click()
    settled(page)
    return label


def visit(browser, url: str, i: int) -> tuple[str, str, bool, float]:
    """One visitor: a new session, run i, page i, drawn; (run, page, handled, seconds)."""
    start = time.monotonic()
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    try:
        page.goto(url)
        page.get_by_text("Models", exact=True).first.wait_for()
        settled(page)
        run = choose_run(page, i)
        title = PAGES[i % len(PAGES)]
        page.get_by_role("link", name=title).first.click()
        page.get_by_role("heading").first.wait_for()
        ok = settled(page)
        uploader = page.locator("[data-testid=stFileUploaderDropzoneInput]")
        if title in ("Classify", "Saliency") and uploader.count():
            upload = {"name": f"visitor{i}.jpg", "mimeType": "image/jpeg", "buffer": photo(i)}
            uploader.first.set_input_files([upload])
            ok = settled(page) and ok
    except Exception as e:  # noqa: BLE001 - a visitor that fails is counted, not fatal
        run, title, ok = f"({type(e).__name__})", PAGES[i % len(PAGES)], False
    finally:
        context.close()
    return run.split("  (")[0], title, ok, time.monotonic() - start


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="the data set (zip or folder)")
    p.add_argument("--sessions", type=int, default=40)
    p.add_argument("--checkpoints", default=str(ROOT / "checkpoints"))
    args = p.parse_args()
    if args.sessions < 1:
        p.error("--sessions must be at least 1")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as empty, sync_playwright() as pw:
        proc, url = start_server(args.data, Path(args.checkpoints), Path(empty))
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            return soak(browser, url, proc.pid, args.sessions)
        finally:
            browser.close()
            proc.terminate()
            proc.wait(timeout=30)


def soak(browser, url: str, pid: int, sessions: int) -> int:
    baseline = rss_mb(pid)
    print(f"server at start: {baseline:,.0f} MB")
    print("| visitor | run | page | drawn | seconds | server MB |")
    print("|---|---|---|---|---|---|")
    memory, handled = [], 0
    for i in range(sessions):
        run, title, ok, seconds = visit(browser, url, i)
        handled += ok
        memory.append(rss_mb(pid))
        print(f"| {i + 1} | {run} | {title} | {'yes' if ok else 'NO'} | {seconds:.1f} | "
              f"{memory[-1]:,.0f} |", flush=True)  # fmt: skip
    warm_at = (len(memory) - 1) // 2  # by then every run and page has been seen a few times
    warm, end, peak = memory[warm_at], memory[-1], max(memory)
    print(f"\nvisitors: tried {sessions} / handled {handled}")
    print(f"server memory: start {baseline:,.0f} MB, warm (after visitor {warm_at + 1}) "
          f"{warm:,.0f} MB, end {end:,.0f} MB, peak {peak:,.0f} MB")  # fmt: skip
    later = memory[warm_at:]
    print(f"growth after warm-up: {end - warm:+,.0f} MB over {len(later) - 1} visitors "
          f"({(end - warm) / max(1, len(later) - 1):+.1f} MB per visitor)")  # fmt: skip
    return 0 if handled == sessions else 1


if __name__ == "__main__":
    raise SystemExit(main())
