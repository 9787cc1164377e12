"""What the dashboard benches share: timing and tables, a server, and first page visits.

`bench/app_speed.py` (the shipped runs) and `bench/import_speed.py` (an imported model)
measure the explain pages the same way: a new server on the runs in question, headless
Chromium, and for each page the seconds from the click to its first chart, map, image or
message drawn and to its script run done (`first_visits`, `visit`).
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/x.py` measures this checkout's tinyviz
    sys.path.insert(0, str(ROOT))
PAGES = {
    "Confusion": "pages/confusion.py",
    "Channels": "pages/channels.py",
    "Saliency": "pages/saliency.py",
    "Embeddings": "pages/embeddings.py",
}
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


# ------------------------------------------------------------------ timing, tables


def timed(fn, repeat: int = 1) -> tuple[float, object]:
    """Median seconds over `repeat` calls, and the last result."""
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:,.0f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(r: list[str]) -> str:
        return "| " + " | ".join(f"{str(c):{w}s}" for c, w in zip(r, widths, strict=True)) + " |"

    out = [f"\n{title}\n", line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    return "\n".join(out + [line(r) for r in rows])


def load_average() -> str:
    try:
        return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return ""


# ------------------------------------------------------------------------ server


def fresh_checkpoints(dest: Path, runs: list[str]) -> Path:
    """The files a clone of the repository has in `checkpoints/` (tracked, or new and not
    ignored), copied: what a visitor's machine starts from."""
    import shutil

    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "checkpoints"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    for rel in listed:
        parts = Path(rel).parts
        if len(parts) > 1 and parts[1] in runs:
            target = dest / Path(*parts[1:])
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / rel, target)  # not copy2: new mtimes, as a clone has
    return dest


def start_server(data_path: str, checkpoints: Path, runs: Path, runs_dir: Path | None = None):
    """`streamlit run app.py` on `data_path`, with shipped runs from `checkpoints` and more
    runs from `runs`; returns (process, url) once it answers."""
    port = free_port()
    env = {
        **os.environ,
        "TINYVIZ_DATA": data_path,
        "TINYVIZ_CHECKPOINTS": str(checkpoints),
        "TINYVIZ_RUNS": str(runs),
        "TINYVIZ_RUNS_DIR": str(runs_dir or runs),
    }
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
           "--server.port", str(port), "--browser.gatherUsageStats", "false"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("streamlit did not start")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_idle(pid: int, quiet: float = 0.05, timeout: float = 120.0) -> float:
    """Seconds since now until the server process has used under `quiet` of a core for two
    seconds in a row: its background work (importing the explain pages' libraries, loading
    the chosen run's analysis and model) is done, as a visitor who arrives a minute after
    the server started meets it."""
    start = time.perf_counter()
    ticks = os.sysconf("SC_CLK_TCK")

    def cpu() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks

    calm, last = 0, cpu()
    while calm < 2 and time.perf_counter() - start < timeout:
        time.sleep(1.0)
        now = cpu()
        calm, last = (calm + 1 if now - last < quiet else 0), now
    return time.perf_counter() - start


# ------------------------------------------------------------------- page visits

FRESH = "[data-testid=stMain] [data-testid=stElementContainer][data-stale=false]"
DRAWN = ", ".join(  # the new page's own elements: the last page's stay on screen, stale, a while
    f"{FRESH} {what}"
    for what in (
        "[data-testid=stVegaLiteChart] canvas",
        "[data-testid=stVegaLiteChart] svg",
        "[data-testid=stPlotlyChart] canvas",  # a map of many points: WebGL
        "[data-testid=stPlotlyChart] .scatterlayer .point",  # a few hundred: SVG
        "[data-testid=stImage] img",
        "[data-testid=stAlert]",  # a page that has nothing to draw says why
    )
)
OLD = """s => { const old = [...document.querySelectorAll(s)];
  window.__tvOld = new WeakSet(old);
  window.__tvOldText = old.map(e => e.textContent || "").filter(t => t); }"""
NEW = """s => { const again = t => window.__tvOldText.some(
    o => o.startsWith(t) || t.startsWith(o.slice(0, 40)));
  const fresh = e => e.dataset.testid !== "stAlert" || (e.textContent && !again(e.textContent));
  const shown = e => e.offsetParent || e.getClientRects().length;  // SVG: no offsetParent
  const e = [...document.querySelectorAll(s)].find(e => shown(e) &&
    !window.__tvOld.has(e) && fresh(e));
  return e ? e.closest("[data-testid^=st]").dataset.testid : null; }"""
KINDS = {"stVegaLiteChart": "chart", "stPlotlyChart": "map", "stAlert": "message"}


def settle(page) -> None:
    """Until the script run is over (Streamlit's status widget gone)."""
    page.wait_for_timeout(300)
    page.locator("[data-testid=stStatusWidget]").wait_for(state="hidden")


@dataclass(frozen=True)
class Visit:
    """One first visit of a page: seconds to its first drawn result (of which `kind`) and
    to its script run done; `waiting` when it showed an analysis job's progress instead."""

    drawn: float
    done: float
    kind: str
    waiting: bool

    def __str__(self) -> str:
        job = " (job)" if self.waiting else ""
        return f"{fmt(self.drawn)} {self.kind} / {fmt(self.done)}{job}"


def visit(page, title: str) -> Visit:
    """Seconds from the click on `title` to its first chart, map, image or message drawn
    (which of them: said) and to its script run done ("(job)" when it waits for an analysis
    job). From the Train page, which draws no chart, and counting only nodes that were not
    on screen before the click: so neither the last page's charts (stale for a moment, or
    reused in place by React) nor its images nor its messages (redrawn by the last page's
    timed fragment, possibly with new figures, or drawn again part by part: compared by
    their text) count as this page's."""
    page.get_by_role("link", name="Train").first.click()
    settle(page)
    page.evaluate(OLD, DRAWN)
    start = time.perf_counter()
    page.get_by_role("link", name=title).first.click()
    kind = page.wait_for_function(NEW, arg=DRAWN, polling="raf").json_value()
    drawn = time.perf_counter() - start
    settle(page)
    done = time.perf_counter() - start
    waiting = "First look" in page.inner_text("[data-testid=stMain]")
    return Visit(drawn, done, KINDS.get(kind, "image"), waiting)


def first_visits(browser, url: str, server_pid: int, titles=tuple(PAGES)):
    """A new tab on a new server: the entry page, then (once the server has settled and the
    browser has loaded the explain pages' chart code) each page in `titles` once. Returns
    the seconds the server took to settle and each page's `Visit`."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(600_000)
    try:
        page.goto(url)
        page.get_by_text("Models", exact=True).first.wait_for()
        settle(page)
        ready = server_idle(server_pid)
        page.wait_for_function("window.__tvPreloadDone === true")
        return ready, [visit(page, title) for title in titles]
    finally:
        page.close()
