"""Your own model on this machine: importing a torchvision ResNet-18, then its explain pages.

    python bench/import_speed.py --data PATH [--reference resnet18-push] [--skip pages]

A student's model as `torch.save(model.state_dict(), "mine.pt")` writes it: a torchvision
ResNet-18 with a head of the data set's classes (random weights, seeded: the timings do
not depend on what it learned). Then, as `tinyviz import mine.pt --arch
torchvision:resnet18 --data PATH --out RUN` does it, in this process:

1. Import: read the weights (`weights_only`), build the network (no download), find its
   head and layers, write the run folder (`import_model`).
2. Evaluate it on the whole validation set (`evaluate_run`).
3. The background analysis job the import starts (niced, as the pages start it): seconds
   until its stratified subset is stored (the pages draw it) and until the full set is.
4. Pages: a new server on the imported run and headless Chromium, once the server has
   settled; the first visit of Confusion, Channels, Saliency and Embeddings (each from the
   Train page): seconds to the first chart, map or image drawn, and to the page's script
   run done (`bench/_common.py`, the same measure as `bench/app_speed.py`). With
   `--reference`, the same visits on that shipped run (a fresh clone's copy, a new server)
   in the same run of this script, and the ratio imported / shipped of the first-drawn
   times.

Prints the tables; the machine's load average is printed with them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch
from _common import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PAGES,
    first_visits,
    fmt,
    fresh_checkpoints,
    load_average,
    start_server,
    table,
    timed,
)


def student_weights(path: Path, classes: int) -> Path:
    """What the student's training script saves: a state dict, not the pickled module."""
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=classes)
    torch.save(model.state_dict(), path)
    return path


def bench_import(data, weights: Path, out: Path, poll: float = 1.0) -> tuple[str, dict]:
    from tinyviz.explain import analysis, analysis_job
    from tinyviz.runs.evaluate import evaluate_run
    from tinyviz.runs.importer import ImportRequest, import_model

    request = ImportRequest(weights, out, "torchvision:resnet18")
    converted, run = timed(lambda: import_model(request, data))
    scored, result = timed(lambda: evaluate_run(run, data))
    before = analysis_job.status(run, data)  # the subset's size is known before the start
    start = time.perf_counter()
    analysis_job.start(run, data)
    subset_at = None
    while True:
        job = analysis_job.status(run, data)
        if subset_at is None and analysis.available(run, data) is not None:
            subset_at = time.perf_counter() - start
        if job.state == "done":
            break
        if job.state == "failed":
            raise SystemExit(f"analysis failed: {job.message}")
        time.sleep(poll)
    analysed = time.perf_counter() - start
    n = result["n"]
    rows = [
        ["import (read, build, write the run folder)", fmt(converted), ""],
        [f"evaluate ({n:,} validation images)", fmt(scored), f"{scored / n * 1000:.1f} ms"],
        [f"analysis job: subset ({before.subset:,} images) stored", fmt(subset_at), ""],
        ["analysis job: full set stored", fmt(analysed), f"{analysed / n * 1000:.1f} ms"],
        ["until every page has its full analysis", fmt(converted + scored + analysed), ""],
    ]
    size = weights.stat().st_size / 2**20
    title = (
        f"Importing a torchvision ResNet-18 state dict ({size:.0f} MiB, "
        f"{len(data.classes.wnids)} classes; top-1 {result['top1']:.1%}: untrained)"
    )
    return table(title, ["step", "seconds", "per image"], rows), result


def bench_pages(data_path: str, runs: Path, reference: str) -> str:
    """First visits on the imported run, and on `reference` (a shipped run) for scale."""
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="tinyviz-import-pages-"))
    (tmp / "none").mkdir()
    servers = [("imported torchvision:resnet18", tmp / "none", runs)]
    if reference:
        shipped = fresh_checkpoints(tmp / "checkpoints", [reference])
        servers.append((f"shipped {reference}", shipped, tmp / "none"))
    rows, visits_of = [], []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for label, checkpoints, more in servers:
                server, url = start_server(data_path, checkpoints, more, tmp / "none")
                try:
                    ready, visits = first_visits(browser, url, server.pid)
                finally:
                    server.terminate()
                    server.wait(timeout=30)
                rows.append([label, fmt(ready), *map(str, visits)])
                visits_of.append(visits)
                print(" | ".join(rows[-1]), flush=True)
            browser.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if len(visits_of) == 2:  # a ratio only where both pages drew the same kind of thing first
        ratios = [
            f"{a.drawn / b.drawn:.2f}x" if a.kind == b.kind else f"- ({a.kind}, {b.kind})"
            for a, b in zip(*visits_of, strict=True)
        ]
        rows.append(["first drawn: imported / shipped", "", *ratios])
    return table(
        "First visit of each explain page in a browser, a new server per run "
        "(first chart, map or image drawn / page's script done)",
        ["run", "server idle", *PAGES],
        rows,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="the data set (Tiny ImageNet's zip)")
    p.add_argument("--reference", default="resnet18-push", help="a shipped run ('' for none)")
    p.add_argument("--skip", default="", help="'pages' to measure the import only")
    args = p.parse_args()
    from tinyviz.data import load

    data = load(args.data, progress=False)
    parts = [f"tinyviz import speed, CPU ({torch.get_num_threads()} torch threads, "
             f"{os.cpu_count()} cores; {load_average()} at the start)"]  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="tinyviz-import-bench-"))
    try:
        weights = student_weights(work / "mine.pt", len(data.classes.wnids))
        text, _ = bench_import(data, weights, work / "runs" / "mine")
        parts.append(text)
        print(text, flush=True)
        if "pages" not in args.skip:
            parts.append(bench_pages(args.data, work / "runs", args.reference))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    parts.append(f"\n({load_average()} at the end)")
    print("\n".join(parts))


if __name__ == "__main__":
    main()
