"""The Embeddings page's t-SNE and UMAP maps: the time a visitor waits against the page's
estimate (issue 21.6), and what adding the stored training images costs.

    python bench/map_speed.py --data PATH [--run effnet_lite2-finetune] [--skip all,browser]

Works on copies of the shipped run (in a temporary folder), so nothing of the repository is
written; the maps' measurements go where the pages' go (`map_speed.path()`, under the cache
root), as every map made on this machine teaches the next estimates.

1. Background maps, asked for as the page asks (`work.request`): seed 004's seven classes
   (figure 11, the page's default), twenty classes, and all 200 (unless skipped), each
   method: the page's estimate when asked (`_emb_map.estimate`, less its `PAGE` part, the
   page's poll and redraw), the seconds until the map is stored, and their ratio.
2. The page in headless Chromium (a new server on another copy): seconds from the click on
   t-SNE, then on UMAP, to the map drawn, against the estimate the page shows at the click;
   then the stored training images of those classes toggled on: seconds to the map drawn
   with them, against the cost the toggle states.

The machine's load average is printed: other processes share the CPU; times are of this run.
"""

from __future__ import annotations

import argparse
import re
import shutil
import tempfile
import time
from pathlib import Path

from _common import (
    CHROMIUM,
    CHROMIUM_ARGS,
    ROOT,
    fmt,
    load_average,
    settle,
    start_server,
    table,
)

FIGURE_11 = ["convertible", "sports car", "plunger", "Egyptian cat", "Persian cat",
             "golden retriever", "bullet train"]  # fmt: skip
TWENTY = 20  # the first twenty classes by name


def bench_background(data, run_dir: Path, subsets: dict[str, list[int] | None]) -> str:
    from tinyviz.explain import analysis, embed, map_speed, work

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / run_dir.name
        shutil.copytree(run_dir, run)  # maps are written beside its analysis: not here
        source = analysis.read(analysis.available(run, data))
        for name, classes in subsets.items():
            points = len(embed.select(source.outputs.labels, classes))
            for method in ("tsne", "umap"):
                worker = work.map_worker()  # as the page asks: a worker that will take it
                estimate = map_speed.estimate(method, 2, points, worker=worker) - map_speed.PAGE
                req = work.Request(
                    "map", str(run), str(data.source), data.size,
                    {"method": method, "dims": 2, "classes": classes,
                     "source": str(source.folder), "stop": None},
                )  # fmt: skip
                start = time.perf_counter()
                now = work.request(req)
                while now.state != "done":
                    if now.state in ("failed", "stopped"):
                        raise SystemExit(f"{name} {method}: {now.error or now.state}")
                    time.sleep(0.1)
                    now = work.status(req)
                took = time.perf_counter() - start
                rows.append(
                    [f"{name} ({points:,} images)", method, fmt(estimate), fmt(took),
                     f"{took / estimate:.2f}", load_average().split()[-3]]
                )  # fmt: skip
                print(" | ".join(rows[-1]), flush=True)
    return table(
        f"1. Background maps of {run_dir.name}, asked for as the page asks (launch to stored)",
        ["classes", "method", "estimated", "measured", "measured / estimated", "load"],
        rows,
    )


def bench_browser(data, data_path: str, run_dir: Path, classes: list[int]) -> str:
    from playwright.sync_api import sync_playwright

    from tinyviz.explain import train_features

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp) / "runs"
        run = runs / run_dir.name
        shutil.copytree(run_dir, run)
        _training_features(data, run_dir, run, classes[:2])
        stored = [k for k in train_features.cached_classes(run, data) if k in classes]
        (Path(tmp) / "none").mkdir()
        server, url = start_server(data_path, Path(tmp) / "none", runs, Path(tmp) / "none")
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1100})
                page.set_default_timeout(900_000)
                page.goto(url)
                page.get_by_text("Models", exact=True).first.wait_for()
                page.get_by_role("link", name="Embeddings").first.click()
                page.locator(".st-key-tv_emb_map .js-plotly-plot").wait_for()
                settle(page)
                for label in ("t-SNE", "UMAP"):
                    rows.append(_click_method(page, label))
                    print(" | ".join(rows[-1]), flush=True)
                if stored:
                    rows.append(_toggle_training(page))
                    print(" | ".join(rows[-1]), flush=True)
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    n = sum(len(data.train.of_class(k)) for k in stored)
    return table(
        f"2. The Embeddings page in Chromium ({run_dir.name}, seed 004's 7 classes; "
        f"{n:,} training images stored): click to map drawn",
        ["what", "estimated (shown)", "measured", "measured / estimated", "load"],
        rows,
    )


def _click_method(page, label: str) -> list[str]:
    start = time.perf_counter()
    page.locator("[data-testid=stButtonGroup] button").filter(
        has_text=re.compile(f"^{re.escape(label)}$")
    ).click()
    info = page.get_by_text(re.compile("being computed in the background")).first
    info.wait_for()
    estimate = _seconds(info.inner_text())
    page.get_by_text(re.compile(f"^{re.escape(label)} of the penultimate features")).wait_for()
    page.locator(".st-key-tv_emb_map .js-plotly-plot .scatterlayer .point").first.wait_for()
    took = time.perf_counter() - start
    settle(page)
    return [f"{label} map", fmt(estimate), fmt(took), f"{took / estimate:.2f}", _load()]


def _toggle_training(page) -> list[str]:
    toggle = page.get_by_text(re.compile(r"^Training images too: ")).first
    estimate = _seconds(toggle.inner_text())
    start = time.perf_counter()
    toggle.click()
    page.get_by_text(re.compile(r"training images \(open circles\)")).first.wait_for()
    page.wait_for_function(
        "() => { const gd = document.querySelector('.st-key-tv_emb_map .js-plotly-plot');"
        " return gd && gd._fullData.some(t => t.marker && t.marker.symbol === 'circle-open'"
        " && t.x.length > 0); }"
    )
    took = time.perf_counter() - start
    settle(page)
    return ["training images on (UMAP map)", fmt(estimate), fmt(took), f"{took / estimate:.2f}",
            _load()]  # fmt: skip


def _seconds(text: str) -> float:
    """The first 'about N s' / 'about N min' / 'under a second' of a page's text."""
    if "under a second" in text:
        return 0.5
    found = re.search(r"about ([\d.]+) (s|min|h)\b", text)
    if not found:
        raise SystemExit(f"no estimate in {text!r}")
    return float(found.group(1)) * {"s": 1, "min": 60, "h": 3600}[found.group(2)]


def _training_features(data, shipped: Path, run: Path, fallback: list[int]) -> None:
    """The copy gets the training features the shipped run has stored (its mirror in the
    cache: same weights, same data, same files), else those of `fallback` computed now."""
    from tinyviz.explain import train_features

    have = train_features.folder(shipped, data)
    target = train_features.folder(run, data)
    if have.is_dir() and any(have.glob("class-*.npy")):
        target.mkdir(parents=True, exist_ok=True)
        for f in have.glob("class-*.npy"):
            shutil.copy(f, target / f.name)
    else:
        train_features.compute(run, data, fallback)


def _load() -> str:
    return load_average().split()[-3]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--run", default="effnet_lite2-finetune", help="a shipped run")
    p.add_argument("--skip", default="", help="comma-separated: all (200 classes), background, "
                   "browser")  # fmt: skip
    args = p.parse_args()
    from tinyviz.data import load
    from tinyviz.runs import open_run

    skip = set(filter(None, args.skip.split(",")))
    data = load(args.data, progress=False)
    run_dir = ROOT / "checkpoints" / args.run
    names = open_run(run_dir).class_names
    figure = sorted(names.index(n) for n in FIGURE_11)
    subsets: dict[str, list[int] | None] = {
        "figure 11's 7 classes": figure,
        f"{TWENTY} classes": sorted(range(len(names)), key=lambda k: names[k].lower())[:TWENTY],
    }
    if "all" not in skip:
        subsets["all classes"] = None
    parts = [f"map_speed on this CPU ({load_average()} at the start)"]
    if "background" not in skip:
        parts.append(bench_background(data, run_dir, subsets))
    if "browser" not in skip:
        parts.append(bench_browser(data, args.data, run_dir, figure))
    parts.append(f"\n({load_average()} at the end)")
    print("\n".join(parts))


if __name__ == "__main__":
    main()
