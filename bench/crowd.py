"""A crowd at the poster: does Classify still answer first while everyone explains?

    python bench/crowd.py [--data PATH] [--contexts 12] [--seconds 300] [--out FILE]

Starts the dashboard as a poster session does (`tinyviz serve`: `streamlit run app.py`
with its memory settings; headless, in a session of its own, on a free port, with the
probes of bench/served.py) on a fresh copy of the shipped runs in `checkpoints/`
and on the data set of `--data` (default: `TINYVIZ_DATA`), already decoded: its decoded
images are shared with a new, empty cache root, so no map, saliency map or queue is left
from an earlier run. Then one headless Chromium with `--contexts` browser contexts (a
Streamlit session each) loops for `--seconds`, each visitor in turn:

1. Classify: uploads a photo of its own (a random crop of one of scikit-image's and
   scikit-learn's bundled photos, never a data set image, a new one each time) and waits
   for the top-5 of every chosen model (time to answer: upload to the last top-5 shown;
   "unanswered" past `--answer` seconds), then for every model's heat map (timed from
   the upload too: a page that draws the top-5s first and the maps after shows the cost).
   Then it picks its next run in the sidebar.
2. Confusion: waits for the matrix, clicks a non-empty cell off the diagonal of the zoomed
   block (time: click to that cell's images listed). The cell's "why" section then asks
   for its contrastive maps (in the background where they are slow).
3. Saliency: a new misclassified image, then ticks a slow method (Integrated Gradients or
   Occlusion, by turns): time to its map or to its place in the background queue shown;
   then waits up to `--heavy-wait` seconds for the map.
4. Embeddings, with the next run: chooses t-SNE or UMAP (by turns) of the default classes:
   time to that map, or to the PCA map with the t-SNE/UMAP map's place in the queue; then
   up to `--heavy-wait` seconds for it.

Each visitor reads for `--think` seconds after each answer; visitor i starts i seconds
after the first and starts with run i, so the runs differ between visitors. The server's
memory (its resident set and its children's: the queue's workers, the upload decoder) is
read every half second: at the start (the entry page drawn once, the server idle), its peak
while the crowd is there, and `--after` seconds after the last visitor left. The machine's
cores and load average are printed with the table; the browser runs on the same machine
(at a poster it runs on the visitors' phones), so its share of the CPU counts against the
server here.

`--phones N` adds N visitors, each in a Chromium of its own left at the bench's priority,
reported apart: at a poster each visitor's browser runs on a CPU of its own (their phone's),
so what they see is the server's answer with one unhurried browser; the crowd's twelve
browsers, lowered by `--browser-nice` and sharing the server's two cores, are starved
meanwhile as before (and their table is the goal's).

Before the crowd, one visitor goes once through the steps alone and leaves (`--no-warm`:
not), and the memory is read `--after` seconds later too: what the first use of each page
keeps (imported code, each run's models) apart from what the crowd leaves. Besides the
visitors' waits, the report gives the server's own time per script run, how late its event
loop ran a no-op asked every 0.1 s, Classify's wait split at the browser's own marks (the
upload's request, the server's messages, the top-5 drawn), and where the server's memory is
(glibc's heap, Python's objects) before the crowd, after the one visitor and at the end.

Goal (issue 19): Classify p95 under 2 s, no upload unanswered, every heavy request answered
or shown queued with its place, memory back within 300 MB of its start.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from _common import CHROMIUM, CHROMIUM_ARGS, ROOT, fmt, free_port, load_average, server_idle, table
from PIL import Image

from tinyviz.runtime import serve, timings

STEPS = ("Classify", "Confusion", "Saliency", "Embeddings")
HEAT = "Classify's maps"  # a row of its own, apart from the top-5s
ROWS = ("Classify", HEAT, *STEPS[1:])
WHAT = {
    "Classify": "upload to every chosen model's top-5",
    HEAT: "upload to every chosen model's heat map",
    "Confusion": "cell clicked to its images listed",
    "Saliency": "slow method ticked to its map or its place in the queue",
    "Embeddings": "t-SNE/UMAP chosen to its map, or the PCA map and its place in the queue",
}
SLOW_METHODS = ("Integrated Gradients", "Occlusion")
MAP_METHODS = ("t-SNE", "UMAP")
GOAL_P95, GOAL_MEMORY_MB = 2.0, 300.0
TIMINGS = "timings.jsonl"  # in the server's folder: its own time per script run
# What the page says of a request in the background queue (pages/_queued.describe).
QUEUED = ("in the queue", "computing in the background", "starting in the background")


# --------------------------------------------------------------------------- photos


def bundled_photos() -> list[np.ndarray]:
    """The colour photos that ship inside scikit-image and scikit-learn (no download)."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    photos = [getattr(skimage.data, n)() for n in ("chelsea", "coffee", "rocket", "astronaut")]
    return photos + list(load_sample_images().images)


def photo(photos: list[np.ndarray], rng: random.Random) -> bytes:
    """A visitor's new snapshot: a random square-ish crop of a bundled photo, maybe
    mirrored, as a JPEG (a different file, and different pixels, every time)."""
    img = photos[rng.randrange(len(photos))]
    h, w = img.shape[:2]
    side = int(min(h, w) * rng.uniform(0.6, 1.0))
    y, x = rng.randrange(h - side + 1), rng.randrange(w - side + 1)
    crop = img[y : y + side, x : x + side]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(crop)).save(
        buf, format="JPEG", quality=rng.randint(80, 92)
    )
    return buf.getvalue()


# --------------------------------------------------------------------------- server


def fresh_cache(data: str) -> Path:
    """A new cache root that knows the data set's decoded images (an entry of the index
    pointing at the user's decoded folder) and nothing else."""
    from tinyviz.data import DataError, cache

    try:
        src = cache.locate(data).resolve()
    except DataError as e:
        raise SystemExit(f"error: {e}") from None
    user = cache.cache_root()
    size = cache.last_size(user, src)
    quick = cache._quick_key(src, size)
    folder = cache._lookup(user, quick)
    if folder is None:
        raise SystemExit(
            f"error: {data} is not decoded in {user} yet: run `python -m tinyviz data {data}` "
            "first (minutes, once), then the bench"
        )
    root = Path(tempfile.mkdtemp(prefix="tinyviz-crowd-cache-"))
    cache._remember(root, quick, folder, None)
    return root


def shipped_copy(dest: Path) -> Path:
    """The repository's shipped runs (what git tracks in `checkpoints/`), copied."""
    from _common import fresh_checkpoints

    runs = sorted(p.name for p in (ROOT / "checkpoints").iterdir() if p.is_dir())
    return fresh_checkpoints(dest, runs)


def start_server(data: str, checkpoints: Path, cache_root: Path, tmp: Path, extra: dict):
    """The dashboard as `tinyviz serve` starts it (`streamlit run app.py` with its memory
    settings), in a session of its own (as from a terminal), with the probes of
    bench/served.py (the event loop's lag, memory on SIGUSR1); (process, url)."""
    runs = tmp / "runs"
    runs.mkdir()
    env = {
        **serve.environment(os.environ),  # as `tinyviz serve` starts it (README)
        "TINYVIZ_DATA": data,
        "TINYVIZ_CHECKPOINTS": str(checkpoints),
        "TINYVIZ_RUNS": str(runs),
        "TINYVIZ_RUNS_DIR": str(runs),
        "TINYVIZ_CACHE": str(cache_root),
        timings.ENV: str(tmp / TIMINGS),  # the server's own time per script run
        **extra,
    }
    env = {k: v for k, v in env.items() if v != ""}  # `--server-env NAME=`: not set
    port = free_port()
    cmd = [sys.executable, "bench/served.py", "run", "app.py", "--server.headless", "true",
           "--server.port", str(port), "--browser.gatherUsageStats", "false"]  # fmt: skip
    log = open(tmp / "server.log", "wb")  # noqa: SIM115 - the server's for its life
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return proc, url
        except OSError:
            time.sleep(0.3)
    stop_server(proc)
    tail = (tmp / "server.log").read_text(errors="replace")[-2000:]
    raise SystemExit(f"error: the dashboard did not start within 2 minutes:\n{tail}")


def family(pid: int) -> list[int]:
    """`pid` and all its descendants (the queue's workers are the server's children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{p}/task"):
                todo += map(int, Path(f"/proc/{p}/task/{task}/children").read_text().split())
    return out


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM to the server and to every process it started (each in its own session)."""
    for pid in reversed(family(proc.pid)):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


class Memory:
    """The server's resident memory with its children's, read every half second."""

    def __init__(self, pid: int) -> None:
        self.pid, self.samples = pid, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now(self) -> float:
        """MB resident in the server and its children now."""
        return sum(mb for _, mb in self.each())

    def each(self) -> list[tuple[str, float]]:
        """(what, MB resident) of the server and of each of its children."""
        out = []
        for p in family(self.pid):
            with contextlib.suppress(OSError, StopIteration, ValueError):
                status = Path(f"/proc/{p}/status").read_text().splitlines()
                kb = int(next(x for x in status if x.startswith("VmRSS")).split()[1])
                anon = int(next(x for x in status if x.startswith("RssAnon")).split()[1])
                cmd = Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")
                what = "server" if p == self.pid else " ".join(c.decode() for c in cmd[1:4])
                out.append((f"{what} (of which {anon / 1024:,.0f} MB not from files)", kb / 1024))
        return out

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.samples.append((time.monotonic(), self.now()))

    def start(self) -> Memory:
        self._thread.start()
        return self

    def peak(self, since: float, until: float) -> float:
        return max((mb for t, mb in self.samples if since <= t <= until), default=0.0)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


# -------------------------------------------------------------------------- visitors


@dataclass
class Tally:
    """What the visitors saw: seconds to answer per step (None: no answer in time), each
    heavy request's outcome, the error boxes drawn."""

    answers: dict = field(default_factory=lambda: {s: [] for s in ROWS})
    heavy: list = field(default_factory=list)  # (step, "drawn" | "queued" | "none")
    parts: list = field(default_factory=list)  # Classify's answered waits, split (`split`)
    errors: list = field(default_factory=list)
    loops: int = 0


FRESH = "e => !e.closest('[data-stale=true]')"
FRESH_CSS = "[data-testid=stMain] [data-stale=false]"
HEADINGS = {
    "Classify": "What does the model see?",
    "Confusion": "Confusion: what is mistaken for what",
    "Saliency": "Saliency maps",
    "Embeddings": "Embeddings: how the model arranges the images",
}


def drawn_under_photo(caption: str) -> str:
    """JS: when `want` captions beginning with `caption` are drawn under the photo `name`'s
    heading (fresh: drawn by this run), else false. Captions: Streamlit's, or the lines of
    Classify's answer blocks (`.tv-cap`, HTML)."""
    return f"""([name, want]) => {{
  const fresh = {FRESH}, main = document.querySelector('[data-testid=stMain]');
  if (!main) return false;
  const head = [...main.querySelectorAll('h3')].filter(h => fresh(h) &&
    h.textContent.includes(name)).pop();
  if (!head) return false;
  const caps = main.querySelectorAll('[data-testid=stCaptionContainer], .tv-cap');
  return [...caps].filter(c => fresh(c) && c.textContent.startsWith({caption!r})
    && (head.compareDocumentPosition(c) & Node.DOCUMENT_POSITION_FOLLOWING)).length >= want
    && Date.now();  // when it was seen drawn
}}"""


CLASSIFY_DONE = drawn_under_photo("Top-5 (")  # every chosen model's top-5
HEAT_DONE = drawn_under_photo("Where it looked for ")  # and the caption under each map
# In every page of a visitor: when each message from the server arrived (the socket's
# events, before Streamlit's own handler), and room for every upload's resource timing.
STAMPS = """(() => {
  performance.setResourceTimingBufferSize(100000);
  const frames = window.__tvFrames = [], WS = window.WebSocket;
  window.WebSocket = class extends WS {
    constructor(...a) {
      super(...a);
      this.addEventListener('message', () => {
        frames.push(Date.now());
        if (frames.length > 20000) frames.splice(0, 10000);
      });
    }
  };
})();"""
# Classify's wait cut at the browser's own marks (ms since the epoch): the upload's request
# (resource timing) and the server's messages between the upload and the top-5 drawn.
SPLIT = """([since, drawn]) => {
  const at = t => performance.timeOrigin + t;
  const up = performance.getEntriesByType('resource')
    .filter(e => e.name.includes('/upload_file') && at(e.startTime) >= since).pop();
  if (!up) return null;
  const end = at(up.responseEnd), got = window.__tvFrames.filter(t => t >= end && t <= drawn);
  return {sent: at(up.startTime), uploaded: end, first: got.length ? got[0] : null,
          last: got.length ? got[got.length - 1] : null, drawn}; }"""
CHOSEN_MODELS = ".st-key-tv_cls_pick .react-aria-ComboBox [data-tag]"
CELL_TEXT = f"""() => {{ const fresh = {FRESH};
  const m = [...document.querySelectorAll('[data-testid=stMain] [data-testid=stMarkdownContainer]')]
    .filter(fresh).map(e => e.innerText).find(t => / (taken for|correctly classified) /.test(t)
      && t.includes(' validation images'));
  return m || null; }}"""
# A non-empty cell off the diagonal of the zoomed block, other than the one shown: read
# from the canvas's pixels (coloured cells are blue, the shown cell is ringed orange),
# without an array per pixel (that took 0.3 s of the visitor's browser each time).
CELL_AT = """(seed) => {
  const c = document.querySelector('[class*="st-key-tv_conf_block_"] canvas');
  if (!c || !c.width) return null;
  const W = c.width, H = c.height, d = c.getContext('2d').getImageData(0, 0, W, H).data;
  const on = (x, y) => x >= 0 && y >= 0 && x < W && y < H, i = (x, y) => (y * W + x) * 4;
  const blue = (x, y) => on(x, y) && d[i(x, y) + 3] > 200 && d[i(x, y) + 2] > 140
    && d[i(x, y) + 2] - d[i(x, y)] > 40;
  const orange = (x, y) => on(x, y) && d[i(x, y) + 3] > 200 && d[i(x, y)] > 200
    && d[i(x, y) + 2] < 90;
  const box = () => [W, H, -1, -1];
  const grow = (k, x, y) => { k[0] = Math.min(k[0], x); k[1] = Math.min(k[1], y);
    k[2] = Math.max(k[2], x); k[3] = Math.max(k[3], y); };
  const g = box(), o = box();
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    if (blue(x, y)) grow(g, x, y); else if (orange(x, y)) grow(o, x, y);
  }
  const [x0, y0, x1, y1] = g;
  if (x1 - x0 < 30 || y1 - y0 < 30) return null;
  const picks = [], inside = [[0, 0], [-3, 0], [3, 0], [0, -3], [0, 3]];
  for (let y = y0; y <= y1; y += 2) for (let x = x0; x <= x1; x += 2) {
    if (!inside.every(([dx, dy]) => blue(x + dx, y + dy))) continue;
    if (Math.abs((x - x0) / (x1 - x0) - (y - y0) / (y1 - y0)) < 0.06) continue;  // the diagonal
    if (x > o[0] - 4 && x < o[2] + 4 && y > o[1] - 4 && y < o[3] + 4) continue;  // shown now
    picks.push([x, y]);
  }
  const r = c.getBoundingClientRect(), at = ([x, y]) => ({x: r.left + x * r.width / W,
    y: r.top + y * r.height / H});
  const seen = picks.map(at).filter(p => p.y > 0 && p.y < innerHeight && p.x < innerWidth);
  return seen.length ? seen[Math.floor(seed * seen.length)] : null; }"""
METHOD_STATE = f"""(label) => {{ const fresh = {FRESH};
  const t = [...document.querySelectorAll('[data-testid=stMain] [data-testid=stMarkdownContainer]')]
    .filter(fresh).map(e => e.innerText.trim()).find(t => t.startsWith(label + ' · '));
  return t ? t.slice(label.length + 3) : null; }}"""
DRAWN = {"Saliency": "s => /^[\\d,]+ ms/.test(s)", "Embeddings": "s => s === 'drawn'"}
MAP_STATE = f"""(name) => {{ const fresh = {FRESH};
  const title = document.querySelector('.st-key-tv_emb_map .js-plotly-plot .xtitle');
  if (title && title.textContent.startsWith(name + ' ') && fresh(title)) return 'drawn';
  const bar = [...document.querySelectorAll('[data-testid=stMain] [data-testid=stProgress]')]
    .filter(fresh).map(e => e.innerText).find(t => t.includes('The ' + name + ' map: '));
  const pca = title && /^PC(A )?1/.test(title.textContent);  // 'PCA 1': aligned epoch maps
  return bar && pca ? bar : null; }}"""


class Visitor:
    """One visitor in a browser context of its own, looping over the four steps."""

    def __init__(self, n: int, browser, url: str, args, photos, tally: Tally):
        self.n, self.browser, self.url, self.args = n, browser, url, args
        self.photos, self.tally = photos, tally
        self.rng = random.Random(1000 + n)
        self.loop = 0

    async def visit(self, deadline: float, loops: int | None = None) -> None:
        """Loop over the steps until `deadline` (or `loops` loops), then leave."""
        await asyncio.sleep(self.n * min(1.0, 20.0 / max(self.args.contexts, 1)))
        self.context = await self.browser.new_context(viewport={"width": 1400, "height": 1000})
        await self.context.add_init_script(STAMPS)
        self.page = await self.context.new_page()
        self.page.set_default_timeout(self.args.answer * 1000)
        try:
            await self.page.goto(self.url)
            await self.page.get_by_text("Models", exact=True).first.wait_for()
            while time.monotonic() < deadline:
                for step in STEPS:
                    if time.monotonic() >= deadline:
                        break
                    try:
                        await getattr(self, step.lower())()
                    except Exception as e:  # noqa: BLE001 - a step that fails is counted
                        self.tally.answers[step].append(None)
                        why = str(e).splitlines()[0][:160] if str(e) else ""
                        self.tally.errors.append(
                            f"visitor {self.n}, {step}: {type(e).__name__} {why}".strip()
                        )
                        await self._shot(step)
                        await self._recover()
                    await self._look_for_errors(step)
                    await asyncio.sleep(self.args.think)
                self.loop += 1
                self.tally.loops += 1
                if loops is not None and self.loop >= loops:
                    break
        finally:
            await self.context.close()  # the visitor leaves

    # ------------------------------------------------------------- the steps

    async def classify(self) -> None:
        pg = self.page
        await self._open("Classify", "[data-testid=stFileUploader]")
        # a visitor picks a photo once the page is drawn (a file dialog takes seconds), as
        # every other step begins: not racing the page's own first run, whose rest the
        # wait for the top-5 would otherwise include
        await self._settle()
        want = await pg.locator(CHOSEN_MODELS).count()
        name = f"visitor{self.n}-photo{self.loop}.jpg"
        files = {"name": name, "mimeType": "image/jpeg", "buffer": photo(self.photos, self.rng)}
        start, given = time.monotonic(), time.time() * 1000
        upload = pg.locator(f"{FRESH_CSS} [data-testid=stFileUploaderDropzoneInput]")
        await upload.first.set_input_files(files)
        drawn = await self._until(CLASSIFY_DONE, [name, max(want, 1)], self.args.answer)
        await self._answered("Classify", start, drawn)
        if drawn:
            marks = await pg.evaluate(SPLIT, [given, drawn])
            if marks:
                self.tally.parts.append({"given": given, **marks, "who": (self.n, self.loop)})
            left = max(0.1, self.args.answer - (time.monotonic() - start))
            mapped = await self._until(HEAT_DONE, [name, max(want, 1)], left)
            await self._answered(HEAT, start, mapped)
        await self._settle()
        await self._choose_run(self.n + 2 * self.loop)  # Confusion's and Saliency's run

    async def confusion(self) -> None:
        pg = self.page
        await self._open("Confusion", "[class*=st-key-tv_conf_block_] canvas")
        await self._settle()
        block = pg.locator("[class*=st-key-tv_conf_block_] canvas").first
        await block.scroll_into_view_if_needed()  # a click outside the window is lost
        await pg.wait_for_timeout(500)  # Vega draws the chart after the script run
        before = await pg.evaluate(CELL_TEXT)
        where = await pg.evaluate(CELL_AT, self.rng.random())
        if where is None:
            raise RuntimeError("no off-diagonal cell to click")
        start = time.monotonic()
        await pg.mouse.click(where["x"], where["y"])
        changed = f"(b) => {{ const t = ({CELL_TEXT})(); return t !== null && t !== b; }}"
        answered = await self._until(changed, before, self.args.answer)
        await self._answered("Confusion", start, answered)

    async def saliency(self) -> None:
        pg = self.page
        await self._open("Saliency", "[data-testid=stImage] img:visible")
        await self._settle()
        wrong = pg.get_by_role("button", name="Another one")
        if await wrong.count():
            await wrong.first.click()
        else:
            await pg.get_by_text("Random misclassified", exact=True).first.click()
        await self._settle()
        label = SLOW_METHODS[(self.n + self.loop) % len(SLOW_METHODS)]
        box = pg.locator("[data-testid=stCheckbox]").filter(has_text=re.compile("^" + label))
        tick = box.first.get_by_text(re.compile("^" + label))
        if await box.first.locator("input").is_checked():  # the same image came again
            await tick.click()
            await self._settle()
        start = time.monotonic()
        await tick.click()
        said = await self._until(METHOD_STATE, label, self.args.answer)
        await self._answered("Saliency", start, said)
        await self._heavy(
            "Saliency", METHOD_STATE, label, lambda s: bool(re.match(r"[\d,]+ ms", s))
        )

    async def embeddings(self) -> None:
        pg = self.page
        await self._open("Embeddings", ".st-key-tv_emb_map .js-plotly-plot .xtitle")
        await self._settle()
        await self._choose_run(self.n + 2 * self.loop + 1)
        await pg.locator(".st-key-tv_emb_map .js-plotly-plot .xtitle").first.wait_for()
        await self._settle()
        name = MAP_METHODS[self.loop % len(MAP_METHODS)]
        start = time.monotonic()
        method = pg.locator(".st-key-tv_emb_method button").filter(has_text=re.compile(f"^{name}$"))
        await method.first.click()
        said = await self._until(MAP_STATE, name, self.args.answer)
        await self._answered("Embeddings", start, said)
        await self._heavy("Embeddings", MAP_STATE, name, lambda s: s == "drawn")

    # ------------------------------------------------------------- helpers

    async def _answered(self, step: str, start: float, answered: bool) -> None:
        self.tally.answers[step].append(time.monotonic() - start if answered else None)
        if not answered:
            await self._shot(step)

    async def _heavy(self, step: str, js: str, arg, drawn) -> None:
        """A heavy request's outcome: its result drawn within `--heavy-wait` seconds, else
        its place in the queue shown when the page answered (or neither)."""
        first = await self.page.evaluate(js, arg)
        last = first
        if first is None or not drawn(first):
            check = f"(a) => {{ const s = ({js})(a); return s !== null && ({DRAWN[step]})(s); }}"
            if await self._until(check, arg, self.args.heavy_wait, every=0.5):
                last = await self.page.evaluate(js, arg)
        if last is not None and drawn(last):
            outcome = "drawn"
        elif any(s is not None and any(q in s for q in QUEUED) for s in (first, last)):
            outcome = "queued"
        else:
            outcome = "none"
        self.tally.heavy.append((step, outcome))

    async def _open(self, title: str, drawn: str) -> None:
        """Click the page's link; until its heading and `drawn` are on screen, drawn by
        this page (the last page's elements stay a while, marked stale)."""
        await self.page.get_by_role("link", name=title).first.click()
        heading = self.page.get_by_role(
            "heading", name=re.compile("^" + re.escape(HEADINGS[title]))
        )
        await heading.first.wait_for()
        fresh = "[data-testid=stMain] [data-stale=false]"
        await self.page.locator(f"{fresh} {drawn}, {fresh}{drawn}").first.wait_for()

    async def _settle(self) -> None:
        """Until the script run a click started is over (it may start a moment later: a
        visitor's next click would otherwise land on the page as it was before)."""
        app = "[data-testid=stApp][data-test-script-state={}]"
        with contextlib.suppress(Exception):
            await self.page.locator(app.format("running")).wait_for(timeout=1500)
        with contextlib.suppress(Exception):
            await self.page.locator(app.format("notRunning")).wait_for(
                timeout=self.args.answer * 1000
            )

    async def _until(self, js: str, arg, seconds: float, every: float = 0.1):
        """`js`'s first truthy value within `seconds` (polled `every` seconds), else False.
        Each look costs the visitor's browser a few milliseconds, taken from the CPU the
        crowd shares: what is timed is looked for every 0.1 s, a heavy result's arrival
        (drawn within `--heavy-wait` or not) every 0.5 s."""
        try:
            got = await self.page.wait_for_function(
                js, arg=arg, timeout=seconds * 1000, polling=round(every * 1000)
            )
        except Exception:  # noqa: BLE001 - a timeout: no answer in time
            return False
        return await got.json_value()

    async def _choose_run(self, index: int) -> None:
        pg = self.page
        box = pg.locator("[data-testid=stSidebar] [data-testid=stSelectbox]").filter(has_text="Run")
        await box.first.click()
        options = pg.get_by_role("option")
        await options.first.wait_for()
        await options.nth(index % await options.count()).click()
        await self._settle()

    async def _look_for_errors(self, step: str) -> None:
        if await self.page.locator("[data-testid=stException]").count():
            self.tally.errors.append(f"visitor {self.n}, {step}: an error box")

    async def _shot(self, step: str) -> None:
        """A screenshot of a failed step, with `--shots DIR` (to see what the visitor saw)."""
        if self.args.shots:
            Path(self.args.shots).mkdir(parents=True, exist_ok=True)
            name = f"visitor{self.n}-loop{self.loop}-{step}.png"
            with contextlib.suppress(Exception):
                await self.page.screenshot(path=str(Path(self.args.shots) / name), full_page=True)

    async def _recover(self) -> None:
        with contextlib.suppress(Exception):
            await self.page.goto(self.url)
            await self.page.get_by_text("Models", exact=True).first.wait_for()


async def crowd(url: str, args, photos, server: int, alone: bool = False):
    """The visitors, together for `args.seconds`; (what the crowd saw, what the `--phones`
    visitors saw, when they came, left, the CPU seconds spent meanwhile: `cpu_census` of
    the `server` pid, after minus before). `alone`: one visitor, one loop over the steps
    (the server's first use of each page)."""
    from playwright.async_api import async_playwright

    tally, phones = Tally(), Tally()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=browser_command(args.browser_nice), args=CHROMIUM_ARGS
        )
        own = [] if alone else [await pw.chromium.launch(executable_path=CHROMIUM,
                                args=CHROMIUM_ARGS) for _ in range(args.phones)]  # fmt: skip
        came, before = time.monotonic(), cpu_census(server)
        deadline = came + (1e9 if alone else args.seconds)
        contexts = 1 if alone else args.contexts
        visitors = [Visitor(n, browser, url, args, photos, tally) for n in range(contexts)]
        visitors += [Visitor(contexts + k, b, url, args, photos, phones) for k, b in enumerate(own)]
        await asyncio.gather(*(v.visit(deadline, 1 if alone else None) for v in visitors))
        left, after = time.monotonic(), cpu_census(server)  # the browsers still up
        for b in (browser, *own):
            await b.close()
    return tally, phones, came, left, {k: after[k] - before[k] for k in after}


def browser_command(nice: int) -> str:
    """Chromium, or with `nice` a wrapper that starts it in a session of its own whose
    scheduling group (Linux's autogroup, where a nice value of one process only orders it
    inside its session) is lowered by `nice`: the visitors' browsers then take the CPU the
    server leaves, as at a poster, where they run on the visitors' phones."""
    if nice <= 0:
        return CHROMIUM
    wrapper = Path(tempfile.mkdtemp(prefix="tinyviz-crowd-browser-")) / "chromium"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"exec setsid sh -c 'echo {nice} > /proc/self/autogroup 2>/dev/null; "
        f'exec {CHROMIUM} "$@"\' sh "$@"\n'
    )
    wrapper.chmod(0o755)
    return str(wrapper)


async def first_visit(url: str) -> None:
    """One tab opens the entry page, as the poster's own screen does before anyone comes."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": 1400, "height": 1000})
        await page.goto(url)
        await page.get_by_text("Models", exact=True).first.wait_for(timeout=300_000)
        await page.locator("[data-testid=stStatusWidget]").wait_for(state="hidden", timeout=300_000)
        await browser.close()


# --------------------------------------------------------------------------- report


def quantile(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    return float(np.quantile(np.asarray(xs), q))


def report(args, tally: Tally, memory: tuple[float, float, float], cpu: str) -> str:
    rows = answers(tally)
    heavy = []
    for step in ("Saliency", "Embeddings"):
        seen = [o for s, o in tally.heavy if s == step]
        heavy.append(
            [step, str(len(seen)), *(str(seen.count(o)) for o in ("drawn", "queued", "none"))]
        )
    start, warm, peak, end = memory
    classify = [s for s in tally.answers["Classify"] if s is not None]
    p95 = quantile(classify, 0.95)
    unanswered = len(tally.answers["Classify"]) - len(classify)
    lost = sum(o == "none" for _, o in tally.heavy)
    goals = [
        f"Classify p95 under {GOAL_P95:.0f} s: "
        f"{'yes' if p95 is not None and p95 < GOAL_P95 else 'NO'} ({fmt(p95)})",
        f"uploads unanswered within {args.answer:.0f} s: {unanswered}",
        f"heavy requests neither answered nor shown queued with their place: {lost}",
        f"memory back within {GOAL_MEMORY_MB:.0f} MB of its start {args.after:.0f} s after the "
        f"crowd left: {'yes' if end - start <= GOAL_MEMORY_MB else 'NO'} ({end - start:+,.0f} MB)",
    ]
    if warm is not None:
        goals.append(
            f"the same, from the server as one visitor left it (every page used once, "
            f"{args.after:.0f} s after): {'yes' if end - warm <= GOAL_MEMORY_MB else 'NO'} "
            f"({end - warm:+,.0f} MB)"
        )
    head = (
        f"{args.contexts} visitors for {args.seconds:.0f} s, {tally.loops} loops of "
        f"{' / '.join(STEPS)}; {os.cpu_count()} cores, {load_average()} at the end; "
        f"think {args.think:g} s, heavy wait {args.heavy_wait:g} s. {cpu}"
    )
    out = [
        head,
        table(
            "Time to answer, per page",
            ["page", "measured", "asked", "p50", "p95", "max", "not answered"],
            rows,
        ),  # fmt: skip
        table(
            f"Heavy requests: their result drawn within {args.heavy_wait:g} s, else their "
            "place in the queue shown",
            ["page", "asked", "drawn", "queued, place shown", "neither"],
            heavy,
        ),  # fmt: skip
        table(
            "Server memory (its resident set and its children's)",
            [
                "start",
                "after one visitor",
                "peak",
                f"{args.after:.0f} s after the crowd left",
                "end - start",
            ],
            [
                [
                    f"{start:,.0f} MB",
                    "-" if warm is None else f"{warm:,.0f} MB",
                    f"{peak:,.0f} MB",
                    f"{end:,.0f} MB",
                    f"{end - start:+,.0f} MB",
                ]
            ],
        ),  # fmt: skip
        "\nGoals (issue 19):\n" + "\n".join(f"- {g}" for g in goals),
    ]
    if tally.errors:
        shown = sorted(set(tally.errors))
        out.append(f"\nSteps that failed ({len(tally.errors)}): " + "; ".join(shown[:20]))
    return "\n".join(out) + "\n"


def answers(tally: Tally) -> list[list[str]]:
    """Per row of ROWS: what was measured, how often asked, p50, p95, max, not answered."""
    rows = []
    for step in ROWS:
        got = [s for s in tally.answers[step] if s is not None]
        rows.append([step, WHAT[step], str(len(tally.answers[step])), fmt(quantile(got, 0.5)),
                     fmt(quantile(got, 0.95)), fmt(max(got, default=None)),
                     str(len(tally.answers[step]) - len(got))])  # fmt: skip
    return rows


def on_phones(tally: Tally, phones: int) -> str:
    """What the `--phones` visitors saw: the same loop, in a Chromium each at the bench's own
    priority, so their browsers get a share of the CPU as a phone's would be its own, while
    the crowd's browsers are starved as before. Their wait is the server's answer plus one
    unhurried browser: what a visitor at a poster sees, apart from the crowd's browsers."""
    if not phones:
        return ""
    head = ["page", "measured", "asked", "p50", "p95", "max", "not answered"]
    title = (f"{phones} more visitor{'s' if phones > 1 else ''}, each in a browser of its own "
             "(not lowered: its CPU share is its own, as a phone's)")  # fmt: skip
    text = table(title, head, answers(tally))
    if tally.errors:
        text += f"\nTheir steps that failed ({len(tally.errors)}): " + "; ".join(
            sorted(set(tally.errors))[:10]
        )
    return text + "\n" + split(tally.parts, "Their Classify's wait, split at the browser's marks")


def server_side(runs: list[dict], came: float, left: float) -> str:
    """The server's own time per page's script run while the crowd was there (app.py's
    `timings`): what the server took apart from the upload, the network and the browser.
    A run stopped by the visitor's next click is counted apart; a page's own `st.stop()`
    (Classify before a photo) is a run like the others."""
    rows = []
    for page in STEPS:
        mine = [r for r in runs if r.get("page") == page and came <= r.get("at", 0) <= left]
        whole = [r["seconds"] for r in mine if r.get("ended") in ("end", "StopException")]
        rows.append([page, str(len(whole)), fmt(quantile(whole, 0.5)), fmt(quantile(whole, 0.95)),
                     fmt(max(whole, default=None)), str(len(mine) - len(whole))])  # fmt: skip
    return (
        table(
            "The server's own time per script run (app.py's timings: no upload, network, browser)",
            ["page", "runs", "p50", "p95", "max", "stopped by a click"],
            rows,
        )
        + "\n"
    )


SPLIT_ROWS = (
    ("file given to the browser -> its upload sent", "given", "sent"),
    ("the upload (its request to its answer)", "sent", "uploaded"),
    ("upload answered -> the server's first message", "uploaded", "first"),
    ("first -> last message before the top-5 is drawn", "first", "last"),
    ("last message -> top-5 seen drawn (browser; seen every 0.1 s)", "last", "drawn"),
)


def split(parts: list[dict], title: str = "Classify's wait, split at the browser's marks") -> str:
    """Classify's answered waits cut at the browser's own marks: where the time went."""
    rows = []
    for what, a, b in SPLIT_ROWS:
        xs = [(x[b] - x[a]) / 1000 for x in parts if x.get(a) is not None and x.get(b) is not None]
        rows.append([what, str(len(xs)), fmt(quantile(xs, 0.5)), fmt(quantile(xs, 0.95)),
                     fmt(max(xs, default=None))])  # fmt: skip
    head = ["part", "n", "p50", "p95", "max"]
    return table(title, head, rows) + "\n" + slowest(parts)


def slowest(parts: list[dict], n: int = 3) -> str:
    """The `n` longest answered waits, part by part, with whose they were and when (seconds
    since the first upload): a stall is then one visitor's, one part's, one moment's."""
    whole = [x for x in parts if x.get("drawn") is not None]
    if not whole:
        return ""
    start = min(x["given"] for x in whole)
    rows = []
    for x in sorted(whole, key=lambda x: x["drawn"] - x["given"], reverse=True)[:n]:
        cut = [
            fmt((x[b] - x[a]) / 1000) if x.get(a) is not None and x.get(b) is not None else "-"
            for _, a, b in SPLIT_ROWS
        ]
        visitor, loop = x.get("who", ("?", "?"))
        rows.append([f"{visitor}, {loop}", f"{(x['given'] - start) / 1000:,.0f} s",
                     fmt((x["drawn"] - x["given"]) / 1000), *cut])  # fmt: skip
    head = ["visitor, loop", "at", "wait", "to sent", "upload", "to first", "messages", "to drawn"]
    return table(f"Classify's {len(rows)} longest waits, by part", head, rows) + "\n"


def loop_lag(runs: list[dict], came: float, left: float) -> str:
    """How late the server's event loop ran a no-op asked of it every 0.1 s (bench/served.py)
    while the crowd was there: uploads, reruns and every message to the browsers wait so."""
    lags = [ms / 1000 for r in runs if r.get("page") == "(event loop)"
            and came <= r.get("at", 0) <= left for ms in r.get("lags", [])]  # fmt: skip
    row = [str(len(lags)), fmt(quantile(lags, 0.5)), fmt(quantile(lags, 0.95)),
           fmt(quantile(lags, 0.99)), fmt(max(lags, default=None)),
           f"{sum(x > 1.0 for x in lags) * 100 / max(len(lags), 1):.1f}%"]  # fmt: skip
    return table("The server's event loop: how late it ran a no-op asked every 0.1 s",
                 ["looks", "p50", "p95", "p99", "max", "over 1 s"], [row]) + "\n"  # fmt: skip


MEMORY_ROWS = (
    ("resident", "VmRSS"),
    ("of which not from files", "RssAnon"),
    ("glibc heap in use", "malloc_in_use"),
    ("glibc heap free but held", "malloc_free_held"),
    ("glibc mmapped blocks", "malloc_mmapped"),
    ("Python objects (pymalloc blocks in use)", "pymalloc_in_use"),
    ("pymalloc arenas (1 MiB each)", "pymalloc_arenas"),
    ("threads", "Threads"),
)


def memory_where(rows: list[dict]) -> str:
    """The server's own memory (bench/served.py, on SIGUSR1) before the crowd and after."""
    snaps = [r for r in rows if r.get("page") == "(memory)"]
    if len(snaps) < 2:
        return "Where the server's memory is: not read (the probe wrote nothing)\n"
    heads = ["before the crowd", "after one visitor", "at the end"]
    heads = heads[:1] + heads[-len(snaps) + 1 :] if len(snaps) < 3 else heads
    first, last = snaps[0], snaps[-1]
    out = []
    for what, key in MEMORY_ROWS:
        unit = "" if key in ("Threads", "pymalloc_arenas") else " MB"
        shown = [f"{r[key]:,.0f}{unit}" if r.get(key) is not None else "-" for r in snaps[:3]]
        a, b = first.get(key), last.get(key)
        delta = f"{b - a:+,.0f}{unit}" if a is not None and b is not None else "-"
        out.append([what, *shown, delta])
    return table("Where the server's own memory is (glibc's mallinfo2, Python's allocator)",
                 ["", *heads, "end - start"], out) + "\n"  # fmt: skip


def command(args, parser) -> str:
    """The command line that measured this, without the data set's path or where its
    output went (a results file names no machine's folders)."""
    shown = ["python bench/crowd.py", f"--contexts {args.contexts}", f"--seconds {args.seconds:g}"]
    for name in ("think", "answer", "heavy_wait", "after", "browser_nice", "phones"):
        if getattr(args, name) != parser.get_default(name):
            shown.append(f"--{name.replace('_', '-')} {getattr(args, name):g}")
    shown += [f"--server-env {e}" for e in args.server_env] + ([] if args.warm else ["--no-warm"])
    return " ".join(shown)


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU seconds of `pid`: its own, and those of its children it has reaped."""
    ticks = os.sysconf("SC_CLK_TCK")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    return (int(fields[11]) + int(fields[12])) / ticks, (int(fields[13]) + int(fields[14])) / ticks


CPU_USERS = ("the server", "its child processes", "the browsers", "this bench and Playwright")


def cpu_census(server: int) -> dict[str, float]:
    """CPU seconds so far of the server (its own), of its child processes (the background
    worker, the upload decoder: alive or reaped), of every Chromium process on the machine
    (the visitors') and of this bench with Playwright's driver. Differences of two readings
    tell who used the CPU."""
    out = dict.fromkeys(CPU_USERS, 0.0)
    served = family(server)
    for p in served:
        own, reaped = cpu_seconds(p)
        out["the server" if p == server else "its child processes"] += own
        out["its child processes"] += reaped
    browsers = set()
    for entry in Path("/proc").iterdir():  # Chromium, started in a session of its own by
        with contextlib.suppress(OSError):  # `--browser-nice`, is nobody's child here
            if entry.name.isdigit() and (entry / "comm").read_text().startswith("chrom"):
                browsers.add(int(entry.name))
                out["the browsers"] += sum(cpu_seconds(int(entry.name)))
    for p in set(family(os.getpid())) - set(served) - browsers:
        out["this bench and Playwright"] += sum(cpu_seconds(p))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.environ.get("TINYVIZ_DATA"), help="the data set (decoded)")
    p.add_argument("--contexts", type=int, default=12, help="visitors at once (browser contexts)")
    p.add_argument("--seconds", type=float, default=300.0, help="how long the crowd stays")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "crowd_cpu.txt"))
    p.add_argument("--think", type=float, default=2.0, help="seconds a visitor reads an answer")
    p.add_argument("--answer", type=float, default=120.0, help="seconds before 'unanswered'")
    p.add_argument("--heavy-wait", type=float, default=30.0, help="seconds to wait for a map")
    p.add_argument("--after", type=float, default=60.0, help="seconds before the last reading")
    p.add_argument(
        "--browser-nice",
        type=int,
        default=0,
        choices=range(20),
        metavar="0-19",
        help="lower the browser's CPU priority (its session's group) by this: as if "
        "the visitors' browsers ran on their phones (default 0: they share the CPU)",
    )
    p.add_argument(
        "--phones",
        type=int,
        default=0,
        metavar="N",
        help="N more visitors, each in a Chromium of its own not lowered by --browser-nice "
        "(its CPU share its own, as a phone's), reported apart (default 0)",
    )
    p.add_argument(
        "--no-warm",
        dest="warm",
        action="store_false",
        help="no single visitor before the crowd (it shows what the first use of each "
        "page keeps, apart from what the crowd leaves)",
    )
    p.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for the server only; NAME= leaves it unset. The "
        "server starts as `tinyviz serve` does (PYTHONMALLOC=malloc MALLOC_ARENA_MAX=2); "
        "as `streamlit run app.py` does: --server-env PYTHONMALLOC= --server-env "
        "MALLOC_ARENA_MAX=",
    )
    p.add_argument("--shots", help="a folder for a screenshot of every step that failed")
    p.add_argument("--keep", action="store_true", help="keep the server's folders to read")
    args = p.parse_args()
    if not args.data:
        p.error("--data (or TINYVIZ_DATA) is needed: the confusion matrix and maps need images")
    if args.contexts < 1 or args.seconds <= 0 or args.phones < 0:
        p.error("--contexts must be at least 1, --seconds positive and --phones not negative")
    if any("=" not in e or e.startswith("=") for e in args.server_env):
        p.error("--server-env takes NAME=VALUE")
    photos = bundled_photos()
    tmp = Path(tempfile.mkdtemp(prefix="tinyviz-crowd-"))
    cache_root = fresh_cache(args.data)
    checkpoints = shipped_copy(tmp / "checkpoints")
    extra = dict(e.split("=", 1) for e in args.server_env)
    server, url = start_server(args.data, checkpoints, cache_root, tmp, extra)
    try:
        asyncio.run(first_visit(url))
        server_idle(server.pid)
        memory = Memory(server.pid).start()
        start_mb = memory.now()
        os.kill(server.pid, signal.SIGUSR1)  # where its memory is, before the crowd
        warm_mb = None
        if args.warm:  # one visitor first: what the first use of each page keeps
            print(f"server at {url}, {start_mb:,.0f} MB; one visitor first...", flush=True)
            _, _, _, gone, _ = asyncio.run(crowd(url, args, photos, server.pid, alone=True))
            time.sleep(max(0.0, args.after - (time.monotonic() - gone)))
            warm_mb = memory.now()
            os.kill(server.pid, signal.SIGUSR1)
        print(f"server at {url} (pid {server.pid}), {start_mb:,.0f} MB; {args.contexts} "
              f"visitors for {args.seconds:.0f} s...", flush=True)  # fmt: skip
        tally, phones, came, left, spent = asyncio.run(crowd(url, args, photos, server.pid))
        cpu = (
            f"CPU while the crowd was there ({os.cpu_count() * (left - came):,.0f} core-seconds "
            "in all): " + ", ".join(f"{who} {spent[who]:,.0f} s" for who in CPU_USERS) + "."
        )
        after = []
        while (waited := time.monotonic() - left) < args.after:  # the crowd has left
            time.sleep(min(10.0, args.after - waited))
            after.append(f"+{time.monotonic() - left:.0f} s {memory.now():,.0f} MB")
        each = memory.each()
        end_mb = sum(mb for _, mb in each)
        memory.stop()
        os.kill(server.pid, signal.SIGUSR1)  # and after it
        time.sleep(2.0)
        peak = memory.peak(came, left + args.after)
        text = report(args, tally, (start_mb, warm_mb, peak, end_mb), cpu)
        to_wall = time.time() - time.monotonic()  # the timings are stamped with wall time
        runs = timings.read(tmp / TIMINGS)
        text += server_side(runs, came + to_wall, left + to_wall)
        text += loop_lag(runs, came + to_wall, left + to_wall)
        text += split(tally.parts)
        text += on_phones(phones, args.phones)
        text += memory_where(runs)
        text += "After the crowd left: " + ", ".join(after) + "\n"
        text += "At the end: " + ", ".join(f"{w} {mb:,.0f} MB" for w, mb in each) + "\n"
    finally:
        stop_server(server)
        if args.keep:
            print(f"kept: {tmp} (the server's log, the runs), {cache_root} (the queue, the maps)")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(cache_root, ignore_errors=True)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"$ TINYVIZ_DATA=tiny-imagenet-200.zip {command(args, p)}\n" + text)
    print(f"(written to {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
