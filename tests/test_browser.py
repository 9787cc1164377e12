"""The whole app in a real browser: `streamlit run app.py` driven through headless Chromium.

Needs Debian's `chromium` (`.ci/run` installs it) and Playwright's Python package; the app
runs on a generated six-class data set with a small trained run, on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pytest
import tinydata
from PIL import Image

from tinyviz.runtime import timings

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("TINYVIZ_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
WAIT_MS = 120_000
_SERVERS: dict[str, tuple[subprocess.Popen, Path]] = {}  # url -> the server and its log


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


STREAMLIT = [sys.executable, "-m", "streamlit", "run", "app.py"]


def _launch(cmd: list[str], env: dict, log: Path) -> str:
    """Start a server (`cmd` plus its address options) and wait until it answers; its output
    goes to `log` (a pipe nobody reads would stall it once full). Returns its URL."""
    port = _free_port()
    cmd = [*cmd, "--server.headless", "true", "--server.address", "127.0.0.1"]
    cmd += ["--server.port", str(port), "--browser.gatherUsageStats", "false"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    _SERVERS[url] = (proc, log)
    deadline = time.time() + 60
    while True:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return url
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail(f"streamlit did not start: {_server_report(url)[-2000:]}")
            time.sleep(0.5)


def _stop(url: str) -> None:
    proc, _ = _SERVERS.pop(url)
    proc.terminate()
    proc.wait(timeout=20)


def _server_report(url: str, pg=None) -> str:
    """Where a server that does not answer waits: the page's address and text, and every
    thread's stack (`kill -USR1`: tinyviz.runtime.stacks) with the server's last output."""
    proc, log = _SERVERS[url]
    page = f"address {pg.url}; page: {pg.inner_text('body')[:400]!r}\n" if pg else ""
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGUSR1)
    time.sleep(1)
    return page + log.read_text(errors="replace")[-8000:]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A six-class data set (so a top-5 is meaningful) and a resnet18 trained on it."""
    from tinyviz.config import TrainConfig
    from tinyviz.data import load
    from tinyviz.training.loop import train

    base = tmp_path_factory.mktemp("browser")
    files = tinydata.make_files(classes=6, train_per_class=24, val_per_class=6)
    data_zip = tinydata.write_zip(base / "tiny-imagenet-200.zip", files)
    cache = base / "cache"
    data = load(data_zip, root=cache, progress=False)
    cfg = TrainConfig(
        model="resnet18", model_options={"width": 16}, epochs=3, batch_size=32, lr=0.05
    )
    train(cfg, data, base / "runs" / "browser-resnet18", progress=False, log=lambda s: None)
    (base / "none").mkdir()
    return {
        "data": data_zip,
        "runs": base / "runs",
        "cache": cache,
        "empty": base / "none",
        "names": list(data.classes.names),
    }


@pytest.fixture(scope="module")
def server(world):
    env = {
        **os.environ,
        "TINYVIZ_DATA": str(world["data"]),
        "TINYVIZ_RUNS": str(world["runs"]),
        "TINYVIZ_CHECKPOINTS": str(world["empty"]),
        "TINYVIZ_CACHE": str(world["cache"]),
        "TINYVIZ_RUNS_DIR": str(world["empty"]),
        timings.ENV: str(world["cache"] / "timings.jsonl"),  # the server's own time per run
    }
    # as the README starts it: `tinyviz serve` (streamlit run app.py, memory settings)
    url = _launch([sys.executable, "-m", "tinyviz", "serve"], env, world["cache"] / "server.log")
    yield url
    _stop(url)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (see .ci/run)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    pg = browser.new_page(viewport={"width": 1400, "height": 1000})
    pg.set_default_timeout(WAIT_MS)
    pg.goto(server)  # the entry page first: it installs the navigation
    pg.get_by_text("Models", exact=True).first.wait_for()
    yield pg
    pg.close()


def test_a_link_straight_to_a_page_opens_it_with_the_navigation(browser, server):
    """First in this file on purpose: it needs the server's very first request."""
    pg = browser.new_page(viewport={"width": 1400, "height": 1000})
    pg.set_default_timeout(WAIT_MS)
    pg.goto(f"{server}/classify")
    pg.get_by_text("Data set (zip or folder)").wait_for()  # our sidebar, not the legacy one
    pg.get_by_role("heading", name="What does the model see?").wait_for()
    assert pg.get_by_role("link", name="Confusion").count() == 1
    pg.close()


def _open(page, title: str) -> None:
    page.get_by_role("link", name=title).first.click()
    page.get_by_role("heading").first.wait_for()


def _settled(page) -> None:
    """Wait until the script run is over, then check no exception was drawn.

    Streamlit marks its root with the script's state: a run an action started shows as
    "running" (it may be over before we look, hence the short wait), then "notRunning".
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    state = "[data-testid=stApp][data-test-script-state={}]"
    with contextlib.suppress(PlaywrightTimeout):  # it ran and finished already
        page.locator(state.format("running")).wait_for(timeout=2000)
    page.locator(state.format("notRunning")).wait_for()
    assert page.locator("[data-testid=stException]").count() == 0, page.inner_text("body")


def _charts(page, at_least: int) -> None:
    """Wait for that many Vega charts: Streamlit loads its chart code lazily, so on a busy
    machine a chart's element can come after the script run that sent it is over."""
    page.locator("[data-testid=stVegaLiteChart]").nth(at_least - 1).wait_for(state="attached")


def _photo(path: Path) -> Path:
    rng = np.random.default_rng(1)
    img = Image.fromarray(tinydata.class_image(2, rng, size=300))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    path.write_bytes(buf.getvalue())
    return path


def test_classify_upload_shows_five_classes_with_probabilities(page, world, tmp_path):
    _open(page, "Classify")
    page.locator("[data-testid=stFileUploaderDropzoneInput]").first.set_input_files(
        [str(_photo(tmp_path / "photo.png"))]
    )
    caption = page.get_by_text(re.compile(r"^Top-5 \(")).first
    caption.wait_for()
    _settled(page)
    listed = re.search(r"Top-5 \((.*)\) in", caption.inner_text()).group(1)
    guesses = re.findall(r"(.+?) (\d+\.\d)%(?:, |$)", listed)
    assert len(guesses) == 5
    assert {name for name, _ in guesses} <= set(world["names"])
    probs = [float(p) for _, p in guesses]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 100.5
    bars = page.locator(".tv-top5").first  # the bars, drawn as HTML: a row per guess
    assert bars.locator(".n").count() == 5 and bars.locator(".b").first.bounding_box()["width"] > 0
    answered = [
        r for r in timings.read(world["cache"] / "timings.jsonl") if r["page"] == "Classify"
    ]
    assert answered and answered[-1]["ended"] == "end" and answered[-1]["seconds"] > 0


def test_classify_rejects_a_file_that_is_not_an_image(page, tmp_path):
    _open(page, "Classify")
    bad = tmp_path / "notes.png"
    bad.write_text("this is not an image")
    page.locator("[data-testid=stFileUploaderDropzoneInput]").first.set_input_files([str(bad)])
    page.get_by_text(re.compile("notes.png")).last.wait_for()
    page.locator("[data-testid=stAlertContentError]").first.wait_for()
    _settled(page)


@pytest.mark.parametrize("title", ["Confusion", "Embeddings"])
def test_analysis_pages_draw_their_charts(page, title):
    _open(page, title)
    page.locator(
        "[data-testid=stVegaLiteChart] canvas, [data-testid=stVegaLiteChart] svg, "
        ".js-plotly-plot .scatterlayer .point, .js-plotly-plot canvas"  # the map: SVG or WebGL
    ).first.wait_for()
    _settled(page)


def test_upload_names_show_literally_and_refusals_say_why(page, tmp_path):
    """A file name can carry Markdown (bold, an image from an outside host, LaTeX): Classify
    shows it as it is, and the browser asks that host for nothing. A file the browser itself
    refuses (too large) says why on the page, not only on hover; the limit shown is ours."""
    name = "**bold** ![x](http://example.invalid/a.png) $x^2$.png"
    asked = []
    page.on("request", lambda r: asked.append(r.url))
    _open(page, "Classify")
    photo = _photo(tmp_path / "photo.png").read_bytes()
    page.locator("[data-testid=stFileUploaderDropzoneInput]").first.set_input_files(
        [
            {"name": name, "mimeType": "image/png", "buffer": photo},
            {"name": "huge.jpg", "mimeType": "image/jpeg", "buffer": bytes(33 * 2**20)},
        ]
    )
    page.get_by_text(re.compile(r"^Top-5 \(")).first.wait_for()
    _settled(page)
    main = page.locator("[data-testid=stMain]")
    assert name in main.inner_text().replace("\u2060", "")  # word joiners break autolinks
    hostile = "strong:has-text('bold'), .katex, [src*='example.invalid'], [href*='example.invalid']"
    assert main.locator(hostile).count() == 0
    assert not [url for url in asked if "example.invalid" in url]
    reason = page.locator("[data-testid=stFileChip] [role=alert]").first
    assert "32.0MB or smaller" in reason.inner_text() and reason.bounding_box()["width"] > 50
    # one limit on screen: the caption's, not the drop zone's own "32MB per file"
    assert page.locator("[data-testid=stFileUploaderDropzoneInstructions]").first.is_hidden()
    assert main.get_by_text(re.compile(r"^Up to 20 MB a file")).first.is_visible()


# ------------------------------------------------------ poster polish (issue 13)


def test_poster_mode_shows_no_deploy_button_or_developer_menu(page):
    """.streamlit/config.toml: toolbarMode "viewer", even on localhost."""
    _settled(page)
    assert page.get_by_role("button", name="Deploy").count() == 0
    menu = page.locator("[data-testid=stMainMenu] button, [data-testid=stMainMenuButton]")
    if menu.count():
        menu.first.click()
        page.get_by_role("menuitem").first.wait_for()
        items = " ".join(page.get_by_role("menuitem").all_inner_texts())
        assert "Clear cache" not in items and "Rerun" not in items, items


@pytest.fixture
def more_runs(world):
    """Copies of the run under longer names, so that Classify can compare many models."""
    import shutil

    names = [f"browser-resnet18-copy-{i}-with-a-long-name" for i in range(3)]
    for name in names:
        shutil.copytree(world["runs"] / "browser-resnet18", world["runs"] / name)
    yield names
    for name in names:
        shutil.rmtree(world["runs"] / name)


def test_classify_many_models_every_chip_shows_and_the_columns_line_up(page, more_runs, tmp_path):
    _open(page, "Classify")
    picker = page.locator("[data-testid=stMultiSelect]").first
    for _ in range(8):  # choose every model offered
        picker.locator("input").first.click()
        options = page.get_by_role("option")
        if not options.count():
            break
        options.first.click()
        page.keyboard.press("Escape")
        _settled(page)
    outer = picker.bounding_box()

    def inside(box) -> bool:
        x, y, w, h = box["x"], box["y"], box["width"], box["height"]
        return (
            outer["x"] <= x
            and x + w <= outer["x"] + outer["width"]
            and (outer["y"] <= y and y + h <= outer["y"] + outer["height"])
        )

    chips = picker.locator("[data-tag]")  # Streamlit also keeps an off-screen copy to measure
    shown: dict[str, bool] = {}
    for i in range(chips.count()):
        label = chips.nth(i).get_attribute("aria-label")
        shown[label] = shown.get(label, False) or inside(chips.nth(i).bounding_box())
    assert len(shown) >= 5 and all(shown.values()), shown
    page.locator("[data-testid=stFileUploaderDropzoneInput]").first.set_input_files(
        [str(_photo(tmp_path / "photo.png"))]
    )
    page.get_by_text(re.compile(r"^Top-5 \(")).first.wait_for()
    _settled(page)
    heads = page.locator(".tv-ans")  # the one photo's columns: each model's answer head
    boxes = [heads.nth(i).bounding_box() for i in range(heads.count())]
    assert len(boxes) == len(shown)
    rows: dict[int, list[dict]] = {}
    for box in boxes:
        rows.setdefault(round(box["y"]), []).append(box)
    assert len(rows) == -(-len(boxes) // 3)  # rows of three, each header at one height...
    for row in rows.values():
        assert len({round(b["height"]) for b in row}) == 1  # ...and of one height
    headline = heads.first.locator(".say").first
    assert headline.evaluate("e => getComputedStyle(e).whiteSpace") == "nowrap"


def test_models_page_draws_the_random_search(page, world):
    import shutil

    from tinyviz.runs.search import SearchRecord, Trial, write_search

    folder = world["runs"] / "search-browser"
    trials = tuple(
        Trial(k, 10 ** (-3 + k), 10 ** (-6 + k / 2), 0.1 * (k + 1), f"t{k}") for k in range(4)
    )
    write_search(folder, SearchRecord("logreg", 1, 1000, trials))
    try:
        _open(page, "Models")
        page.get_by_role("heading", name="Random search").wait_for()
        page.get_by_text(re.compile("Ringed in red: the best, 40.0%")).wait_for()
        _settled(page)
        _charts(page, 3)  # top-1 bars, training curves, the search
    finally:
        shutil.rmtree(folder)


def test_train_page_estimates_the_time_before_start(page):
    _open(page, "Train")
    page.get_by_text(re.compile(r"for \d+ epochs? on the CPU")).first.wait_for()
    _settled(page)
    assert page.get_by_role("button", name="Start training").count() == 1


# ------------------------------------------- shipped analysis: explain pages at once (issue 10)


@pytest.fixture(scope="module")
def shipped(world, tmp_path_factory):
    """A run as the repository ships it (weights, records, the compact analysis keyed by the
    validation set's content), served by a second app that has never seen the data set: a
    fresh clone, with its own empty cache, so the data is decoded and keyed anew there. Its
    head is biased towards class 0, so that it makes mistakes: Confusion then explains one."""
    import shutil

    from tinyviz import runs
    from tinyviz.data import load
    from tinyviz.explain import analysis

    base = tmp_path_factory.mktemp("clone")
    run = base / "checkpoints" / "shipped-resnet18"
    without_analysis = shutil.ignore_patterns("analysis")
    shutil.copytree(world["runs"] / "browser-resnet18", run, ignore=without_analysis)
    weights = runs.load_weights(run / runs.RunFolder.WEIGHTS)
    weights["fc.bias"][0] += weights["fc.weight"].abs().sum(1).mean() * 0.3
    runs.save_weights(run / runs.RunFolder.WEIGHTS, weights)
    analysis.compute(run, load(world["data"], root=world["cache"], progress=False))
    stored = [f for f in (run / "analysis").iterdir() if f.is_dir()]
    assert len(stored) == 1 and analysis.compact(stored[0]) > 0
    env = {
        **os.environ,
        "TINYVIZ_DATA": str(world["data"]),
        "TINYVIZ_RUNS": str(world["empty"]),
        "TINYVIZ_CHECKPOINTS": str(run.parent),
        "TINYVIZ_CACHE": str(base / "fresh-cache"),
        "TINYVIZ_RUNS_DIR": str(world["empty"]),
    }
    url = _launch(STREAMLIT, env, base / "server.log")
    yield {"url": url, "run": run, "folder": stored[0], "cache": base / "fresh-cache"}
    _stop(url)


# Every progress bar and note the page ever shows, recorded as it appears (a bar that comes
# and goes between two looks of the test would otherwise be missed).
RECORD_PROGRESS = """() => {
  window.tvSeen = [];
  const look = () => document.querySelectorAll(
      '[data-testid=stProgress], [data-testid=stAlert]').forEach(
      e => window.tvSeen.push(e.innerText));
  new MutationObserver(look).observe(document.body,
      {subtree: true, childList: true, characterData: true});
}"""


def test_a_shipped_run_opens_confusion_without_computing_anything(browser, shipped):
    pg = browser.new_page(viewport={"width": 1400, "height": 1000})
    pg.set_default_timeout(WAIT_MS)
    pg.goto(shipped["url"])
    pg.get_by_text("Models", exact=True).first.wait_for()
    pg.evaluate(RECORD_PROGRESS)
    _open(pg, "Confusion")
    pg.locator(
        "[data-testid=stVegaLiteChart] canvas, [data-testid=stVegaLiteChart] svg"
    ).first.wait_for()
    _settled(pg)
    seen = pg.evaluate("window.tvSeen")
    assert not [s for s in seen if "analys" in s.lower() or "First look" in s], seen
    assert "Top-1 accuracy" in pg.inner_text("[data-testid=stMain]")
    assert pg.locator("[data-testid=stProgress]").count() == 0
    folder = shipped["folder"]
    assert not (folder / "work").exists() and not (folder / "logp.npy").exists()  # read only
    decoded = list(shipped["cache"].glob("tiny-*/meta.json"))  # the clone's own data cache
    assert len(decoded) == 1 and "val_key" in decoded[0].read_text()
    # "why B and not A" is computed after the matrix is drawn, on the browser's own trigger
    pg.get_by_text(re.compile("minus the logit of")).first.wait_for()
    assert pg.get_by_text(re.compile("^Computing the contrastive maps")).count() == 0
    _settled(pg)
    _the_shown_cell_is_one_state(pg)
    pg.close()


def _tooltip(pg) -> tuple[str, str] | None:
    """(true, predicted) of the matrix cell under the pointer, from the chart's tooltip (a
    table: each field's name, then its value)."""
    tip = pg.locator("#vg-tooltip-element")
    if not (tip.count() and tip.is_visible()):
        return None
    cells = [line.strip() for line in tip.inner_text().splitlines() if line.strip()]
    rows = dict(zip(cells[::2], cells[1::2], strict=False))
    return (rows["true"], rows["predicted"]) if "true" in rows and "predicted" in rows else None


def _why(pg) -> str:
    return pg.get_by_role("heading", name=re.compile("^Why ")).first.inner_text()


def _the_shown_cell_is_one_state(pg) -> None:
    """Issue 21.3 in the browser (the AppTest does the same with "Compute them"): a cell
    clicked in the zoomed matrix, then a pair picked in the list, then another class order:
    the pair stays shown; the cell clicked first, clicked again, is shown again (a chart
    keeping its own selection sent nothing new, or sent it again after the order change)."""
    block = pg.locator("[data-testid=stVegaLiteChart] canvas").nth(1)
    box = block.bounding_box()
    clicked = None
    for fy in (0.35, 0.5, 0.65, 0.2, 0.8):  # the cells (the grid layer takes every click)
        for fx in (0.5, 0.65, 0.8, 0.35, 0.2):
            x, y = box["x"] + fx * box["width"], box["y"] + fy * box["height"]
            pg.mouse.move(x, y)
            pg.wait_for_timeout(50)
            found = _tooltip(pg)
            if found and found[0] != found[1]:
                clicked = (x, y, *found)
                break
        if clicked:
            break
    assert clicked, "no off-diagonal cell found under the pointer"
    x, y, true, answer = clicked
    pg.mouse.click(x, y)
    _settled(pg)
    pg.get_by_role("heading", name=f"Why {answer} and not {true}?").wait_for()
    pairs = pg.locator("[data-testid=stRadio] label")
    other = next(
        label
        for label in pairs.all_inner_texts()
        if re.match(r"^.+ → .+: \d+ of \d+", label)  # a pair, not the list's own label
        and label.split(":")[0] != f"{true} → {answer}"
    )
    pg.locator("[data-testid=stRadio] label").filter(has_text=other).first.click()
    _settled(pg)
    a, b = other.split(":")[0].split(" → ")
    pg.get_by_role("heading", name=f"Why {b} and not {a}?").wait_for()
    pg.locator("[data-testid=stButtonGroup] button").filter(has_text=re.compile("^name$")).click()
    _settled(pg)
    assert _why(pg) == f"Why {b} and not {a}?"  # not back at the cell clicked first
    checked = pg.locator("[data-testid=stRadio] input:checked")
    assert checked.count() == 1  # the list shows the pair on screen
    box = pg.locator("[data-testid=stVegaLiteChart] canvas").nth(1).bounding_box()
    for fy in (0.2, 0.35, 0.5, 0.65, 0.8):  # the cell clicked first, in the new order
        for fx in (0.2, 0.35, 0.5, 0.65, 0.8):
            pg.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
            pg.wait_for_timeout(50)
            if _tooltip(pg) == (true, answer):
                pg.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
                _settled(pg)
                pg.get_by_role("heading", name=f"Why {answer} and not {true}?").wait_for()
                return
    raise AssertionError(f"the cell {true} → {answer} was not found again")


def test_the_entry_page_loads_the_explain_pages_chart_code_while_it_is_read(page):
    """The plotly code of the Embeddings map (megabytes) is fetched and run on the page
    the visitor arrives at, once the browser is idle, before any explain page needs it."""
    page.wait_for_function("window.__tvPreloadDone === true")
    loaded = page.evaluate(
        "performance.getEntriesByType('resource').map(e => e.name.split('/').pop())"
    )
    assert any(name.startswith("PlotlyChart.") for name in loaded), loaded
    assert page.locator(".js-plotly-plot").count() == 0  # fetched, not drawn


# ------------------------------------------------- the full embeddings map (issue 12)

MAP = ".st-key-tv_emb_map .js-plotly-plot"
POINTS_JS = f"""() => {{ const gd = document.querySelector('{MAP}');
  const d = gd && gd._fullData;
  return d ? d.reduce((n, t) => n + (t.x ? t.x.length : 0), 0) : 0; }}"""
FIRST_POINT_JS = f"""() => {{ const gd = document.querySelector('{MAP}');
  const d = gd._fullData, t = d.findIndex(t => t.x.length > 0), fl = gd._fullLayout;
  const r = gd.getBoundingClientRect();
  return {{x: r.left + fl.xaxis._offset + fl.xaxis.l2p(d[t].x[0]),
          y: r.top + fl.yaxis._offset + fl.yaxis.l2p(d[t].y[0])}}; }}"""

PLOT_AREA_JS = f"""() => {{ const gd = document.querySelector('{MAP}');
  const fl = gd._fullLayout, r = gd.getBoundingClientRect();
  return {{x: r.left + fl.xaxis._offset, y: r.top + fl.yaxis._offset,
          w: fl.xaxis._length, h: fl.yaxis._length}}; }}"""


def test_embeddings_map_draws_every_point_with_hover_thumbnails_and_a_lasso(
    page, world, record_property
):
    """All validation points on plotly's map (SVG for these few, as for seed 004's seven
    classes; WebGL beyond `_map.SVG_POINTS`); resting the pointer on one shows its
    thumbnail (cut from a sprite sheet the server hands out as a static file) with its
    class; a lasso around the points lists their images. The times are recorded (the
    bench measures them on 10,000 real points: bench/explain_speed.py)."""
    _open(page, "Embeddings")
    page.locator(MAP).wait_for()
    _settled(page)
    start = time.perf_counter()
    page.locator(".st-key-tv_emb_all button").click()
    total = len(world["names"]) * 6  # the world's validation images
    page.wait_for_function(f"() => ({POINTS_JS})() >= {total}")
    page.locator(f"{MAP} .scatterlayer .point").first.wait_for()
    drawn = time.perf_counter() - start
    _settled(page)
    assert page.evaluate(POINTS_JS) == total
    point = page.evaluate(FIRST_POINT_JS)
    start = time.perf_counter()
    page.mouse.move(point["x"] - 2, point["y"] - 2)
    page.mouse.move(point["x"], point["y"])
    thumb = page.locator("#tv-map-tip [data-testid=tv-map-thumb]")
    thumb.wait_for(state="visible")
    hovered = time.perf_counter() - start
    sheet = re.search(r'url\("?([^")]+)"?\)', thumb.get_attribute("style")).group(1)
    assert "app/static/sprites/" in sheet
    response = page.request.get(urllib.parse.urljoin(page.url, sheet))
    assert response.ok and response.headers["content-type"] == "image/jpeg"
    tip = page.locator("#tv-map-tip").inner_text()
    assert tip.splitlines()[0] in world["names"]
    ring = page.locator(f"{MAP} [data-testid=tv-map-ring]")  # the hovered class stands out
    assert int(ring.get_attribute("data-ringed")) >= 6  # its 6 validation images at least
    assert "images of this class ringed" in tip
    area = page.evaluate(PLOT_AREA_JS)  # the lasso must start inside the plotting area
    left, top = area["x"] + 4, area["y"] + 4
    right, bottom = area["x"] + area["w"] - 4, area["y"] + area["h"] - 4
    page.mouse.move(left, top)
    page.mouse.down()
    for x, y in ((right, top), (right, bottom), (left, bottom), (left, top + 1)):
        page.mouse.move(x, y, steps=8)
    page.mouse.up()
    selected = page.get_by_role("heading", name=re.compile(r"images selected$"))
    selected.wait_for()
    _settled(page)
    assert int(selected.inner_text().split()[0]) > 0
    record_property("map_drawn_s", round(drawn, 3))
    record_property("hover_thumbnail_s", round(hovered, 3))
    print(f"map of {total} points drawn in {drawn:.2f} s, thumbnail after {hovered:.2f} s")


# ------------------------------------------------------- your own data (issue 17)

STUDENT_NET = """
from torch import nn


class Net(nn.Module):
    def __init__(self, num_classes=5):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))
"""


@pytest.fixture(scope="module")
def own_data_server(tmp_path_factory):
    """The app with no data set configured, on a five-class image folder decoded at 32 px
    (given in the page's address, `?data=`): one run trained on it and one imported (a
    student's class in a file, its state dict saved with torch.save), each analysed."""
    import torch

    from tinyviz.config import TrainConfig
    from tinyviz.data import load
    from tinyviz.explain import analysis
    from tinyviz.runs.evaluate import evaluate_run
    from tinyviz.runs.importer import ImportRequest, import_model
    from tinyviz.training.loop import train

    base = tmp_path_factory.mktemp("own-browser")
    folder = tinydata.make_image_folder(base / "shapes")
    data = load(folder, size=32, root=base / "cache", progress=False)
    cfg = TrainConfig(model="resnet18", model_options={"width": 8}, epochs=1, batch_size=16)
    train(cfg, data, base / "runs" / "shapes-resnet18", progress=False, log=lambda s: None)
    (base / "mynet.py").write_text(STUDENT_NET)
    namespace: dict = {}
    exec(compile(STUDENT_NET, "mynet.py", "exec"), namespace)
    torch.manual_seed(0)
    torch.save(namespace["Net"]().state_dict(), base / "student.pt")
    request = ImportRequest(base / "student.pt", base / "runs" / "student", f"{base}/mynet.py:Net")
    imported = import_model(request, data)
    evaluate_run(imported, data)
    analysis.compute(imported, data)
    (base / "none").mkdir()
    env = {k: v for k, v in os.environ.items() if k != "TINYVIZ_DATA"}
    env.update(
        TINYVIZ_RUNS=str(base / "runs"),
        TINYVIZ_CHECKPOINTS=str(base / "none"),
        TINYVIZ_CACHE=str(base / "cache"),
        TINYVIZ_RUNS_DIR=str(base / "none"),
    )
    url = _launch(STREAMLIT, env, base / "server.log")
    yield {"url": url, "folder": folder}
    _stop(url)


CHART = "[data-testid=stVegaLiteChart] canvas, [data-testid=stVegaLiteChart] svg"
# Each page: the start of its heading, and what it draws once it has its data.
OWN_PAGES = {
    "Confusion": ("Confusion:", CHART),  # first: clicked while the entry page still runs
    "Models": ("Models", "[data-testid=stDataFrame]"),
    "Train": ("Train a model", "button:has-text('Start training')"),
    "Import": ("Import your own model", "text=Weights file on the server"),
    "Channels": ("Channels:", CHART),
    "Saliency": ("Saliency maps", "[data-testid=stImage] img:visible"),
    "Embeddings": ("Embeddings:", ".js-plotly-plot .scatterlayer .point, .js-plotly-plot canvas"),
    "Two models": ("Two models", "text=McNemar p"),
    "Classify": ("What does the model see?", "[data-testid=stFileUploader]"),
    "Data": ("The data", "[data-testid=stImage] img:visible"),
}


def _open_page(pg, title: str, heading: str, url: str) -> None:
    """Click the page's link and wait for its heading. If it does not come, note where the
    server waits (`_server_report`) and click once more, as a visitor would: a click the
    browser lost passes with a warning that says so; a page never drawn fails with it."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    link = pg.get_by_role("link", name=title).first
    head = pg.get_by_role("heading", name=re.compile("^" + re.escape(heading))).first
    link.click()
    try:
        head.wait_for(timeout=WAIT_MS / 2)
        return
    except PlaywrightTimeout:
        first = _server_report(url, pg)
    link.click()
    try:
        head.wait_for()
    except PlaywrightTimeout:
        pytest.fail(
            f"{title} was never drawn. First wait:\n{first}\nSecond:\n{_server_report(url, pg)}"
        )
    warnings.warn(
        f"{title} was drawn only after a second click; the first wait:\n{first}", stacklevel=2
    )


def test_every_page_opens_on_your_own_image_folder(browser, own_data_server):
    """One tab through every page, the data set given only in the address: each page
    draws its content, the sidebar keeps the folder and the address keeps `?data=` (a
    page link clicked while the first page still runs once lost both), and the pages
    offer nothing of Tiny ImageNet's WordNet or the seeds' figures."""
    folder = str(own_data_server["folder"])
    pg = browser.new_page(viewport={"width": 1400, "height": 1000})
    pg.set_default_timeout(WAIT_MS)
    pg.goto(f"{own_data_server['url']}/?{urllib.parse.urlencode({'data': folder})}")
    pg.get_by_text("Models", exact=True).first.wait_for()
    field = pg.get_by_role("textbox", name="Data set (zip or folder)")
    for title, (heading, drawn) in OWN_PAGES.items():
        _open_page(pg, title, heading, own_data_server["url"])
        _settled(pg)
        pg.locator("[data-testid=stMain]").locator(drawn).first.wait_for()
        main = pg.inner_text("[data-testid=stMain]")
        assert "Tiny ImageNet images" not in main, (title, main[:300])
        assert field.input_value() == folder, title
        assert urllib.parse.parse_qs(urllib.parse.urlparse(pg.url).query)["data"] == [folder]
        if title == "Confusion":
            assert "Top-1 accuracy" in main and "WordNet" not in main
        if title == "Models":
            assert "not shown beside these runs" in main and "seed 00" not in main
            assert "imported run" in main  # how the imported run reads the images
        if title == "Data":
            assert "train/ and val/ folders" in main
    pg.close()
