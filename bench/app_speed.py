"""Dashboard speed on this machine: explain pages of the shipped runs, analysis jobs, clicks.

    python bench/app_speed.py --data PATH [--runs a,b] [--jobs effnet_lite2-finetune,...]
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
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PAGES,
    ROOT,
    first_visits,
    fmt,
    fresh_checkpoints,
    load_average,
    start_server,
    table,
    timed,
)

FIGURE_11 = ["convertible", "sports car", "plunger", "Egyptian cat", "Persian cat",
             "golden retriever", "bullet train"]  # fmt: skip


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
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for name in runs:
            shipped = fresh_checkpoints(tmp / name / "checkpoints", [name])
            (tmp / name / "none").mkdir()
            server, url = start_server(data_path, shipped, tmp / name / "none")
            try:
                ready, visits = first_visits(browser, url, server.pid)
                row = [name, fmt(ready), *map(str, visits)]
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
    p.add_argument("--jobs", default="effnet_lite2-finetune,resnet18-push")
    p.add_argument("--interactions", default="resnet18-push,effnet_lite2-finetune")
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
