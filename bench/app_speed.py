"""Dashboard speed on this machine: explain pages of the shipped runs, analysis jobs, clicks.

    python bench/app_speed.py --data PATH [--runs a,b] [--jobs effnet_lite0-finetune,...]
                              [--interactions resnet18-push,...] [--skip pages,jobs,...]

1. Pages: a fresh clone's state (the repository's files of `checkpoints/` copied to a new
   folder: new mtimes, no analysis but the shipped one, no cached map), a new server per
   shipped run and headless Chromium: once the server has settled (its background imports
   and the sidebar run's analysis and model loaded: the time it took shown) and the browser
   has loaded the explain pages' chart code, seconds from the click on Confusion, Channels,
   Saliency and Embeddings (each from the Train page, which draws no chart) to the first
   chart, map or image drawn, and to the page's script run done. The goal with shipped
   analysis: under 2 s to the first drawn result.
2. Jobs: the background analysis job of a run whose analysis is not there (the run folder
   copied without it), as the pages start it: seconds until the stratified subset is stored
   (the pages draw it) and until the full set is.
3. Interactions, through what the pages call: the confusion matrix, a cell's images, a
   channel's top images and gradient maps, PCA/t-SNE/UMAP maps of seed 004's seven
   classes, an upload's top-5, every saliency method (with the page's estimate beside it;
   a method estimated over `--max-seconds` is skipped and its estimate shown).
Prints a table per section; the machine's load average is printed with it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
PAGES = {
    "Confusion": "pages/confusion.py",
    "Channels": "pages/channels.py",
    "Saliency": "pages/saliency.py",
    "Embeddings": "pages/embeddings.py",
}
FIGURE_11 = ["convertible", "sports car", "plunger", "Egyptian cat", "Persian cat",
             "golden retriever", "bullet train"]  # fmt: skip


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


# ------------------------------------------------------------------ fresh clone


def fresh_checkpoints(dest: Path, runs: list[str]) -> Path:
    """The files a clone of the repository has in `checkpoints/` (tracked, or new and not
    ignored), copied: what a visitor's machine starts from."""
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
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def bench_pages(data_path: str, runs: list[str]) -> str:
    """Per run: a server started on a fresh clone holding only that run (so it is the
    sidebar's run), a browser visiting each explain page once: seconds from the click to
    the first chart or image drawn, and to the end of the page's script run."""
    from playwright.sync_api import sync_playwright

    from tinyviz.explain import analysis
    from tinyviz.runs import RunFolder

    tmp = Path(tempfile.mkdtemp(prefix="tinyviz-bench-"))
    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        for name in runs:
            shipped = fresh_checkpoints(tmp / name / "checkpoints", [name])
            (tmp / name / "none").mkdir()
            server, url = start_server(data_path, shipped, tmp / name / "none")
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(600_000)
                page.goto(url)
                page.get_by_text("Models", exact=True).first.wait_for()
                settle(page)
                ready = server_idle(server.pid)
                page.wait_for_function("window.__tvPreloadDone === true")
                row = [name, fmt(ready), *(visit(page, title) for title in PAGES)]
                page.close()
            finally:
                server.terminate()
                server.wait(timeout=30)
            computed = any(
                (f / analysis.WORK).exists()
                for f in RunFolder(shipped / name).analysis.iterdir()
                if f.is_dir()
            )
            row.append("yes" if computed else "no")
            rows.append(row)
            print(" | ".join(row), flush=True)
        browser.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return table(
        "First visit of each explain page in a browser, fresh clone, a new server per run "
        "(first chart or image drawn / page's script done)",
        ["run", "server idle", *PAGES, "analysis computed"],
        rows,
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


def visit(page, title: str) -> str:
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
    what = KINDS.get(kind, "image")
    return f"{fmt(drawn)} {what} / {fmt(done)}" + (" (job)" if waiting else "")


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


def start_server(data_path: str, checkpoints: Path, empty: Path):
    port = free_port()
    env = {
        **os.environ,
        "TINYVIZ_DATA": data_path,
        "TINYVIZ_CHECKPOINTS": str(checkpoints),
        "TINYVIZ_RUNS": str(empty),
        "TINYVIZ_RUNS_DIR": str(empty),
    }
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
           "--server.port", str(port), "--browser.gatherUsageStats", "false"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    import urllib.request

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
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def settle(page) -> None:
    """Until the script run is over (Streamlit's status widget gone)."""
    page.wait_for_timeout(300)
    page.locator("[data-testid=stStatusWidget]").wait_for(state="hidden")


# ------------------------------------------------------------------------ jobs


def bench_jobs(data, runs: list[str], poll: float = 1.0) -> str:
    from tinyviz.explain import analysis, analysis_job

    rows = []
    for name in runs:
        tmp = Path(tempfile.mkdtemp(prefix="tinyviz-job-"))
        run = tmp / name
        shutil.copytree(ROOT / "checkpoints" / name, run, ignore=shutil.ignore_patterns("analysis"))
        before = analysis_job.status(run, data)
        start = time.perf_counter()
        analysis_job.start(run, data)
        subset_at = None
        while True:
            job = analysis_job.status(run, data)
            folder = analysis.available(run, data)
            if subset_at is None and folder is not None:
                subset_at = time.perf_counter() - start
            if job.state == "done":
                break
            if job.state == "failed":
                raise SystemExit(f"{name}: {job.message}")
            time.sleep(poll)
        total = time.perf_counter() - start
        n = job.total
        estimate = before.eta_seconds
        rows.append(
            [
                name,
                f"{before.subset:,} / {n:,}",
                fmt(subset_at),
                fmt(total),
                fmt(estimate),
                f"{total / n * 1000:.0f} ms",
            ]  # fmt: skip
        )
        print(" | ".join(rows[-1]), flush=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return table(
        "Background analysis job of a run without stored analysis (niced, as the pages start it)",
        [
            "run",
            "subset / images",
            "subset stored",
            "full set stored",
            "estimated before",
            "per image",
        ],
        rows,
    )


# ---------------------------------------------------------------- interactions


def bench_interactions(data, name: str, max_seconds: float) -> str:
    from tinyviz import runs
    from tinyviz.data.batches import to_model_input
    from tinyviz.demo import predict
    from tinyviz.demo.images import load_upload
    from tinyviz.explain import analysis, channels, confusion, embed, speed
    from tinyviz.explain import saliency as explain

    run_dir = ROOT / "checkpoints" / name
    tmp = Path(tempfile.mkdtemp(prefix="tinyviz-clicks-"))
    shutil.copytree(run_dir, tmp / name)  # maps are written beside the analysis: not here
    run_dir = tmp / name
    run = runs.open_run(run_dir)
    cost = speed.of_run(run, "cpu")
    rows: list[list[str]] = []

    def add(what: str, seconds: float | None, estimate: float | None = None) -> None:
        rows.append([what, fmt(seconds), fmt(estimate)])
        print(f"{name}: {what}: {fmt(seconds)}", flush=True)

    t, an = timed(lambda: analysis.read(analysis.available(run_dir, data)))
    add("read the stored analysis", t)
    out = an.outputs
    names, wnids = run.class_names, run.wnids
    for order in ("wordnet", "confusion", "feature"):
        add(
            f"Confusion: matrix, {order} order",
            timed(lambda o=order: confusion.confusion(out, names, order_by=o, wnids=wnids), 3)[0],
        )
    conf = confusion.confusion(out, names)
    pair = conf.pairs[0]
    add(
        "Confusion: a cell's images",
        timed(lambda: confusion.images_of_cell(out, pair.true, pair.pred), 5)[0],
    )
    model = runs.load_model(run)
    if an.channels:
        layer = list(an.channels)[-1]
        tops = an.channels[layer]
        add(
            "Channels: purity of a layer's channels",
            timed(lambda: channels.class_purity(tops, out.labels), 3)[0],
        )
        top = channels.top_images(tops, 3, 6)
        images = np.asarray(data.val.images[out.image_index(top)])
        channels.channel_gradients(model, images, layer, 3)  # warm-up, as the page's first
        add(
            "Channels: a channel's 6 gradient maps",
            timed(lambda: channels.channel_gradients(model, images, layer, 3), 3)[0],
            cost.gradient_maps_seconds(6) if cost else None,
        )
    classes = [names.index(c) for c in FIGURE_11 if c in names]
    for method in ("pca", "tsne", "umap"):
        add(
            f"Embeddings: {method} map of seed 004's 7 classes, first time",
            timed(
                lambda m=method: embed.cached_embedding(
                    run_dir, data, m, 2, classes=classes, source=an
                )
            )[0],
        )
    raw = upload_bytes(data)
    rgb = load_upload(raw).rgb
    add("Classify: decode a 640x480 JPEG upload", timed(lambda: load_upload(raw), 5)[0])
    add(
        "Classify: top-5", timed(lambda: predict.predict_ensemble([model], rgb, names, wnids), 5)[0]
    )
    x = to_model_input(rgb)
    target = int(predict.predict_ensemble([model], rgb, names, wnids).classes[0])
    explain.attribute(model, x, target, "gradient")  # warm-up, as the page's first backward
    for m in explain.METHODS:
        estimate = cost.saliency_seconds(m) if cost else None
        if estimate is not None and estimate > max_seconds:
            add(f"Saliency: {m.label} (skipped: over {max_seconds:.0f} s)", None, estimate)
            continue
        add(
            f"Saliency: {m.label}",
            timed(lambda n=m.name: explain.attribute(model, x, target, n))[0],
            estimate,
        )
    shutil.rmtree(tmp, ignore_errors=True)
    return table(f"Interactions, {name} (CPU)", ["step", "measured", "page's estimate"], rows)


def upload_bytes(data) -> bytes:
    """A validation image as a 640x480 JPEG, the way a phone photo arrives."""
    from io import BytesIO

    from PIL import Image

    buf = BytesIO()
    Image.fromarray(np.asarray(data.val.images[7])).resize((640, 480)).save(buf, "JPEG")
    return buf.getvalue()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--runs", default="", help="shipped runs for the pages (default: all)")
    p.add_argument("--jobs", default="effnet_lite0-finetune,resnet18-push")
    p.add_argument("--interactions", default="resnet18-push,effnet_lite0-finetune")
    p.add_argument("--max-seconds", type=float, default=120.0)
    p.add_argument("--skip", default="", help="comma-separated: pages, jobs, interactions")
    args = p.parse_args()
    from tinyviz.data import load

    data = load(args.data, progress=False)
    skip = set(filter(None, args.skip.split(",")))
    shipped = sorted(
        d.name for d in (ROOT / "checkpoints").iterdir() if (d / "config.json").exists()
    )
    runs = [r for r in args.runs.split(",") if r] or shipped
    parts = [f"tinyviz dashboard speed, CPU ({torch.get_num_threads()} torch threads, "
             f"{os.cpu_count()} cores; {load_average()} at the start)"]  # fmt: skip
    if "pages" not in skip:
        parts.append(bench_pages(args.data, runs))
    if "interactions" not in skip:
        parts += [
            bench_interactions(data, r, args.max_seconds) for r in args.interactions.split(",") if r
        ]
    if "jobs" not in skip:
        parts.append(bench_jobs(data, [r for r in args.jobs.split(",") if r]))
    parts.append(f"\n({load_average()} at the end)")
    print("\n".join(parts))


if __name__ == "__main__":
    main()
