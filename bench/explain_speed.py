"""Speed of the explanations of issue 12 on this machine, with the real data set.

    python bench/explain_speed.py --data PATH [--run checkpoints/resnet18-push]
                                  [--other checkpoints/googlenet_like-epochs] [--skip browser,...]

Works on a copy of the run folder (in a temporary folder, its analysis included), so
nothing of the repository is written. Sections (each a table):

1. sanity: each saliency method on ONE validation image through the whole cascade (the
   original model and each randomized copy), and its deletion + insertion curves; then
   what a full check (`sanity.Settings()`) costs: the estimate the page shows, and the
   time the stored check took if the run has one (`tinyviz sanity RUN`).
2. contrast: a contrastive map per method, the channel contributions of a cell of 24
   images, the features of two classes' training images (2 x 500) and the nearest ones.
3. compare: the comparison of two runs' validation outputs (10,000 images).
4. map: the sprite sheets of the 10,000 validation thumbnails, and the size of the map's
   chart (what the page sends at every rerun) for 10,000 points and for 10,000 + 100,000.
5. browser: the Embeddings page in headless Chromium with the real run: time from opening
   the page to the full map drawn (WebGL canvas), from resting the pointer on a point to its
   thumbnail shown, and the bytes the page received (websocket frames, sprite sheets).
6. webgl: plotly's scattergl alone in Chromium with 10,000 and 110,000 points (the size of
   the map with every training image), first frame and a zoom's frame.

The machine's load average is printed: other processes share the CPU, times are of this run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def timed(fn, repeat: int = 1):
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds * 1000:,.0f} ms"
    return f"{seconds:,.1f} s" if seconds < 600 else f"{seconds / 60:,.1f} min"


def table(title: str, header: list[str], rows: list[list]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(r) -> str:
        return "| " + " | ".join(f"{str(c):{w}s}" for c, w in zip(r, widths, strict=True)) + " |"

    out = [f"\n{title}\n", line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    return "\n".join(out + [line(r) for r in rows])


def load_average() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def say(text: str) -> None:
    print(text, flush=True)


# --------------------------------------------------------------------- sanity


def bench_sanity(run: Path, data) -> None:
    from tinyviz.data.batches import to_model_input
    from tinyviz.explain import faithfulness, saliency, sanity
    from tinyviz.runs import load_model

    model = load_model(run)
    groups = sanity.layer_groups(model)
    i = int(sanity.choose_images(data.val.labels, 1)[0])
    x = to_model_input(np.asarray(data.val.images[i]))
    target = int(model(x).argmax())
    versions = [model] + [m for _, m in sanity.cascade(model, 0, groups)]
    rows = []
    for m in sanity.methods_for(model):
        saliency.attribute(model, x, target, m.name)  # warm-up
        per, _ = timed(lambda m=m: [saliency.attribute(v, x, target, m.name) for v in versions])
        heat = saliency.attribute(model, x, target, m.name).heat
        curves, _ = timed(lambda h=heat: faithfulness.curves(model, x, target, h))
        rows.append([m.label, fmt(per / len(versions)), fmt(per), fmt(curves)])
    say(
        table(
            f"1. Sanity check of {run.name}, one image ({len(versions)} model versions: the "
            f"original and {len(groups)} cascade steps)",
            ["method", "one map", "one image, whole cascade", "deletion + insertion"],
            rows,
        )
    )
    settings = sanity.Settings()
    estimate = sanity.estimate_seconds(model, settings)
    stored = sanity.load(run, data, settings)
    say(
        f"\nA full check ({settings.images} images, {settings.steps} deletion steps): the page "
        f"estimates {fmt(estimate)}; "
        + (
            f"the stored one took {fmt(stored.seconds)} on {stored.device} ({stored.created})."
            if stored
            else "no stored check to compare with."
        )
    )
    if stored:
        say(
            table(
                "   The stored check, per method (its measured seconds) and its scores",
                ["method", "seconds", "rho abs by step", "rho signed by step", "del", "ins"],
                [
                    [
                        t.method,
                        f"{t.seconds:,.0f}",
                        " ".join(f"{v:.2f}" for v in t.abs_corr),
                        " ".join(f"{v:.2f}" for v in t.signed_corr),
                        f"{t.deletion_auc:.3f}",
                        f"{t.insertion_auc:.3f}",
                    ]
                    for t in stored.methods
                ]
                + [
                    [
                        "random order",
                        "",
                        "",
                        "",
                        f"{stored.random_deletion_auc:.3f}",
                        f"{stored.random_insertion_auc:.3f}",
                    ]
                ],  # fmt: skip
            )
        )
        say(f"   steps: {', '.join(stored.stages)}")


# ------------------------------------------------------------------ contrast


def bench_contrast(run: Path, data) -> None:
    from tinyviz.data.batches import to_model_input
    from tinyviz.explain import analysis, confusion, contrastive, train_features
    from tinyviz.runs import load_model

    model = load_model(run)
    out = analysis.val_outputs(run, data)
    conf = confusion.confusion(out, list(data.classes.names))
    pair = conf.pairs[0]
    a, b = pair.true, pair.pred
    rows_cell = confusion.images_of_cell(out, a, b, limit=24)
    images = out.image_index(rows_cell) if hasattr(out, "image_index") else rows_cell
    x = to_model_input(np.asarray(data.val.images[int(images[0])]))
    rows = []
    for method in ("gradcam", "gradient", "integrated_gradients"):
        contrastive.contrastive_map(model, x, a, b, method)
        t, _ = timed(lambda m=method: contrastive.contrastive_map(model, x, a, b, m), 3)
        rows.append([f"contrastive map, {method}", "1 image", fmt(t)])
    t, c = timed(lambda: contrastive.cell_contributions(model, data.val.images[images], a, b), 3)
    rows.append(["channel contributions (features + sums)", f"{len(images)} images", fmt(t)])
    n = len(data.train.of_class(a)) + len(data.train.of_class(b))
    est = train_features.estimate_seconds(model, run, data, [a, b])
    t, _ = timed(lambda: train_features.compute(run, data, [a, b], model=model))
    rows.append(
        ["training features of both classes", f"{n:,} images", f"{fmt(t)} (est. {fmt(est)})"]
    )
    stored = {k: train_features.features(run, data, [k]) for k in (a, b)}
    query = contrastive.image_features(model, data.val.images[[int(images[0])]])[0]
    t, _ = timed(lambda: [contrastive.nearest_training(query, *stored[k], k, 6) for k in (a, b)], 5)
    rows.append(["nearest training images (both classes)", "6 + 6", fmt(t)])
    names = data.classes.names
    say(
        table(
            f"2. Why {names[b]} and not {names[a]} ({run.name}, the most confused pair: "
            f"{pair.count} images)",
            ["what", "on", "time"],
            rows,
        )
    )
    import torch

    with torch.inference_mode():
        z = model(to_model_input(np.asarray(data.val.images[images]))).numpy()
    check = np.abs(c.logit_difference() - (z[:, b] - z[:, a])).max()
    say(f"   channel pushes + bias difference rebuild the model's z_B - z_A to within {check:.1e}")


# ------------------------------------------------------------------- compare


def bench_compare(run: Path, other: Path, data) -> None:
    from tinyviz.explain import analysis, compare

    a, b = analysis.val_outputs(run, data), analysis.val_outputs(other, data)
    t, c = timed(lambda: compare.compare(a, b, len(data.classes.wnids)), 5)
    t2, _ = timed(lambda: (c.matrix, c.wins(8), c.p_value, c.only_right("a")), 5)
    say(
        table(
            f"3. {run.name} against {other.name} on {c.n:,} validation images",
            ["what", "time", "result"],
            [
                ["align and compare", fmt(t), f"same answer {c.same_answer:.1%}"],
                [
                    "matrix, wins, McNemar, disagreements",
                    fmt(t2),
                    f"both right {c.matrix[0, 0]:,}, A only {c.matrix[0, 1]:,}, "
                    f"B only {c.matrix[1, 0]:,}, both wrong {c.matrix[1, 1]:,}; "
                    f"p = {c.p_value:.2g}",
                ],
            ],
        )
    )


# ------------------------------------------------------------------------ map


def bench_map(run: Path, data) -> None:
    import plotly.graph_objects as go

    from tinyviz.explain import sprites

    n = len(data.val)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t, sp = timed(
            lambda: sprites.build(data.val.images, np.arange(n), data.val.labels, Path(tmp), "b")
        )
        size = sum(f.stat().st_size for f in Path(tmp).glob("*.jpg"))
        rows.append(["sprite sheets, 10,000 thumbnails", fmt(t), f"{len(sp.files)} sheets, "
                     f"{size / 2**20:.1f} MB ({size / n:.0f} B a thumbnail)"])  # fmt: skip
    rng = np.random.default_rng(0)
    for points in (n, n + 100_000):
        xy = rng.normal(size=(points, 2)).astype(np.float32)
        custom = rng.integers(0, 200, (points, 5)).astype(np.int32)

        def fig_json(xy=xy, custom=custom):
            fig = go.Figure()
            for g in range(20):  # one trace per colour group, as the page draws
                sel = slice(g, None, 20)
                fig.add_trace(go.Scattergl(x=xy[sel, 0], y=xy[sel, 1], mode="markers",
                                           customdata=custom[sel], hoverinfo="none"))  # fmt: skip
            return fig.to_json()

        t, spec = timed(fig_json)
        rows.append([f"chart of {points:,} points (built + JSON)", fmt(t),
                     f"{len(spec) / 2**20:.2f} MB spec"])  # fmt: skip
    legacy = 3000 * 1100  # the old map: 3,000 points with a ~1.1 KB data URI each
    rows.append(["(before: 3,000 points with data-URI thumbnails)", "", f"{legacy / 2**20:.2f} MB"])
    say(table("4. The embeddings map's payload", ["what", "time", "size"], rows))


# -------------------------------------------------------------------- browser


def bench_browser(run: Path, data_path: str) -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp) / "runs"
        shutil.copytree(run, runs / run.name)
        port = _free_port()
        (Path(tmp) / "none").mkdir()
        env = {**os.environ, "TINYVIZ_DATA": data_path, "TINYVIZ_RUNS": str(runs),
               "TINYVIZ_CHECKPOINTS": str(Path(tmp) / "none"),
               "TINYVIZ_RUNS_DIR": str(Path(tmp) / "none")}  # fmt: skip
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                "app.py",
                "--server.headless",
                "true",
                "--server.port",
                str(port),
                "--server.address",
                "127.0.0.1",
            ],  # fmt: skip
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            _wait(f"{url}/_stcore/health")
            rows = _browse(sync_playwright, url)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    say(
        table(
            f"5. The Embeddings page in Chromium ({run.name}, real data)", ["what", "value"], rows
        )
    )


def bench_webgl() -> None:
    """plotly's scattergl alone in Chromium (no Streamlit): 10,000 and 110,000 points, the
    page's trace layout (20 colour groups); time to the first frame and to a zoom's frame."""
    import json

    import plotly
    from playwright.sync_api import sync_playwright

    js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        for n in (10_000, 110_000):
            xy = rng.normal(size=(n, 2)).round(4)
            traces = [
                {"type": "scattergl", "mode": "markers", "x": xy[g::20, 0].tolist(),
                 "y": xy[g::20, 1].tolist(), "marker": {"size": 4}, "hoverinfo": "none"}
                for g in range(20)
            ]  # fmt: skip
            page_file = Path(tmp) / f"map{n}.html"
            page_file.write_text(
                f"<html><body><div id=gd style='width:1000px;height:620px'></div>"
                f"<script src='file://{js}'></script><script>const T={json.dumps(traces)};"
                "window.t0=performance.now();Plotly.newPlot('gd',T,{dragmode:'lasso'})"
                ".then(()=>requestAnimationFrame(()=>{window.drawn=performance.now()-t0}));"
                "</script></body></html>"
            )
            page = browser.new_page(viewport={"width": 1100, "height": 700})
            page.goto(page_file.as_uri())
            page.wait_for_function("() => window.drawn !== undefined", timeout=600_000)
            drawn = page.evaluate("() => window.drawn") / 1000
            zoom = page.evaluate(
                "() => new Promise(r => { const t = performance.now();"
                " Plotly.relayout('gd', {'xaxis.range': [-1, 1], 'yaxis.range': [-1, 1]})"
                ".then(() => requestAnimationFrame(() => r(performance.now() - t))); })"
            )
            rows.append([f"{n:,} points", fmt(drawn), fmt(zoom / 1000)])
            page.close()
        browser.close()
    say(table("6. plotly scattergl alone in headless Chromium (software WebGL, --disable-gpu)",
              ["map", "first frame", "a zoom's frame"], rows))  # fmt: skip


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def _browse(sync_playwright, url: str) -> list[list[str]]:
    received = {"ws": 0, "sprites": 0}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],  # fmt: skip
        )
        page = browser.new_page(viewport={"width": 1600, "height": 1100})
        page.set_default_timeout(900_000)

        def on_ws(ws):
            ws.on("framereceived", lambda f: received.__setitem__("ws", received["ws"] + len(f)))

        page.on("websocket", on_ws)
        page.on(
            "response",
            lambda r: (
                received.__setitem__("sprites", received["sprites"] + len(r.body()))
                if "/app/static/sprites/" in r.url
                else None
            ),
        )
        page.goto(url)
        page.get_by_text("Models", exact=True).first.wait_for()
        page.get_by_role("link", name="Embeddings").first.click()
        page.locator(".st-key-tv_emb_map .js-plotly-plot").wait_for()
        _settled(page)
        before = received["ws"]
        start = time.perf_counter()
        page.locator(".st-key-tv_emb_all button").click()
        page.wait_for_function(
            "() => { const gd = document.querySelector('.st-key-tv_emb_map .js-plotly-plot');"
            " const d = gd && gd._fullData;"
            " return d && d.reduce((n, t) => n + t.x.length, 0) >= 10000; }"
        )
        page.locator(".st-key-tv_emb_map canvas").first.wait_for()
        drawn = time.perf_counter() - start
        _settled(page)
        payload = received["ws"] - before
        start = time.perf_counter()
        point = page.evaluate(POINT_JS)
        page.mouse.move(point["x"] - 3, point["y"] - 3)
        page.mouse.move(point["x"], point["y"])
        page.locator("#tv-map-tip [data-testid=tv-map-thumb]").wait_for(state="visible")
        page.wait_for_function(SPRITE_LOADED_JS)
        shown = time.perf_counter() - start
        page_text = page.locator("#tv-map-tip").inner_text().replace("\n", " / ")
        browser.close()
    return [
        ["'All classes' clicked to 10,000 points drawn", fmt(drawn)],
        ["the rerun's websocket bytes (chart and page)", f"{payload / 2**20:.2f} MB"],
        ["pointer on a point to its thumbnail shown (sheet fetched)", fmt(shown)],
        ["sprite bytes fetched for that", f"{received['sprites'] / 2**10:,.0f} KB"],
        ["hovered", page_text],
    ]


POINT_JS = """() => {
  const gd = document.querySelector('.st-key-tv_emb_map .js-plotly-plot');
  const d = gd._fullData, t = d.findIndex(t => t.x.length > 0), fl = gd._fullLayout;
  const r = gd.getBoundingClientRect();
  return {x: r.left + fl.xaxis._offset + fl.xaxis.l2p(d[t].x[0]),
          y: r.top + fl.yaxis._offset + fl.yaxis.l2p(d[t].y[0])};
}"""
SPRITE_LOADED_JS = """() => performance.getEntriesByType('resource')
  .some(e => e.name.includes('/app/static/sprites/') && e.responseEnd > 0)"""


def _settled(page) -> None:
    page.wait_for_timeout(500)
    page.locator("[data-testid=stStatusWidget]").wait_for(state="hidden")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(url, timeout=2).read() == b"ok":
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("streamlit did not start")


# ------------------------------------------------------------------------ main


def bench_epochs() -> None:
    """Aligning an epoch's map onto the previous one (issue 12.4): Procrustes over the
    images both maps show, for a map of seed 004's seven classes and one of every image."""
    from tinyviz.explain import epochs

    rng = np.random.default_rng(0)
    rows = []
    for n, dims in ((350, 2), (10_000, 2), (10_000, 3)):
        before = rng.normal(size=(n, dims))
        turn, _ = np.linalg.qr(rng.normal(size=(dims, dims)))
        after = 1.7 * before @ turn + 3.0 + rng.normal(scale=0.01, size=(n, dims))
        ids = np.arange(n)
        seconds, fit = timed(lambda: epochs.align(after, ids, before, ids), repeat=5)  # noqa: B023
        err = float(np.abs(fit.apply(after) - before).max())
        rows.append([f"{n:,} points, {dims}-D", fmt(seconds), f"{err:.3f}"])
    say(table("Epoch views: one map aligned onto the previous epoch's (Procrustes)",
              ["map", "time", "largest error after (noise 0.01)"], rows))  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.environ.get("TINYVIZ_DATA"), help="the data set")
    p.add_argument("--run", default=str(ROOT / "checkpoints" / "resnet18-push"))
    p.add_argument("--other", default=str(ROOT / "checkpoints" / "googlenet_like-epochs"))
    p.add_argument("--skip", default="", help="comma-separated sections to skip")
    args = p.parse_args()
    if not args.data:
        p.error("--data (or TINYVIZ_DATA) is needed")
    import torch

    from tinyviz.data import load

    skip = set(filter(None, args.skip.split(",")))
    data = load(args.data, progress=False)
    say(f"explain_speed on {os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; {load_average()}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / Path(args.run).name
        shutil.copytree(args.run, run)  # train features land in the copy
        steps = [
            ("sanity", lambda: bench_sanity(run, data)),
            ("contrast", lambda: bench_contrast(run, data)),
            ("compare", lambda: bench_compare(run, Path(args.other), data)),
            ("map", lambda: bench_map(run, data)),
            ("browser", lambda: bench_browser(run, args.data)),
            ("webgl", bench_webgl),
            ("epochs", bench_epochs),
        ]
        for name, step in steps:
            if name not in skip:
                step()
                say(f"   ({load_average()})")


if __name__ == "__main__":
    main()
