"""What the AppTest page tests share: open a page through app.py, check it, read its charts."""

from __future__ import annotations

import html
import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from PIL import Image
from streamlit.testing.v1 import AppTest

APP = Path(__file__).parents[1] / "app.py"
SHIPPED = (Path(__file__).parents[1] / "checkpoints").resolve()
RESNET = SHIPPED / "resnet18-push"


def open_page(path: str, run: Path | None = None, **state) -> AppTest:
    """`path` run through app.py's navigation, with `run` chosen and `state` set; not checked."""
    at = AppTest.from_file(str(APP), default_timeout=120)
    if run is not None:
        at.session_state["tv_run"] = str(run)
    for key, value in state.items():
        at.session_state[key] = value
    at.switch_page(path)
    return at.run()


def page(path: str, run: Path | None = None, **state) -> AppTest:
    """`open_page`, checked to have raised nothing."""
    return ok(open_page(path, run, **state))


def ok(at: AppTest, errors: bool = False) -> AppTest:
    """No exception (and, unless `errors`, no st.error) on the page."""
    assert not at.exception, [e.value for e in at.exception]
    if not errors:
        assert not at.error, [e.value for e in at.error]
    return at


def charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]


def chart_rows(at: AppTest, i: int = 0, name: str | None = None):
    """The data of the i-th chart (its first dataset, or the one called `name`; the spec's
    own data where it has no datasets), as a DataFrame."""
    proto = at.get("vega_lite_chart")[i].proto
    if name is None and not proto.datasets:
        return pa.ipc.open_stream(proto.data.data).read_all().to_pandas()
    data = next(d for d in proto.datasets if name is None or d.name == name).data.data
    return pa.ipc.open_stream(data).read_all().to_pandas()


def top5_bars(at: AppTest, i: int = 0):
    """The i-th top-5 drawn as HTML bars (`pages.charts.predictions.top5_html`), as a
    DataFrame of its labels (as shown: escaped) and probabilities, most probable first."""
    drawn = [h.proto.body for h in at.get("html") if 'class="tv-top5"' in h.proto.body]
    body = drawn[i]
    labels = re.findall(r'<div class="n" title="[^"]*">([^<]*)</div>', body)
    probs = [float(p) for p in re.findall(r'data-p="([\d.]+)"', body)]
    return pd.DataFrame({"class": [html.unescape(s) for s in labels], "p": probs})


def select_in_chart(at: AppTest, key_start: str, selection: dict) -> AppTest:
    """What the browser sends when a chart with selections is clicked: the chart whose key
    starts with `key_start` (a chart's id ends with its key) gets `selection` (for example
    {"cell": [{"t": 1, "p": 2}]}), the other widgets keep their values; the script runs."""
    from streamlit.proto.WidgetStates_pb2 import WidgetStates

    ids = [c.proto.id for c in at.get("vega_lite_chart")]
    chosen = [i for i in ids if i.split("-", 2)[-1].startswith(key_start)]  # $$ID-hash-key
    assert len(chosen) == 1, (key_start, ids)
    states = WidgetStates()
    states.CopyFrom(at._tree.get_widget_states())
    state = states.widgets.add()
    state.id = chosen[0]
    state.string_value = json.dumps({"selection": selection})
    return at._run(states)


def path_of(at: AppTest, element) -> tuple[int, ...] | None:
    """Where `element` is in the page (child indices from the main area down). The browser
    tells an element without a key by its place: one whose place changes is drawn anew."""

    def find(node, trail: tuple[int, ...]):
        if node is element:
            return trail
        for i, child in getattr(node, "children", {}).items():
            found = find(child, (*trail, i))
            if found is not None:
                return found
        return None

    return find(at.main, ())


def png(seed: int = 0, size=(200, 150)) -> bytes:
    rgb = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()


def texts(at: AppTest) -> str:
    """Every text the page wrote: its Markdown, captions and HTML blocks (as text)."""
    shown = [
        html.unescape(re.sub(r"<style>.*?</style>|<[^>]+>", " ", h.value)) for h in at.get("html")
    ]
    return "\n".join([*(m.value for m in [*at.markdown, *at.caption]), *shown])


def wait_for_analysis(run: Path, data, timeout: float = 300.0):
    """Poll the run's background analysis job until it is stored; its log if it is not."""
    import time

    from tinyviz.explain import analysis_job

    deadline = time.monotonic() + timeout
    while True:
        job = analysis_job.status(run, data)
        if job.state == "done":
            return job
        if job.state == "failed" or time.monotonic() > deadline:
            raise AssertionError(f"{job}\n" + "\n".join(analysis_job.log_tail(job, 20)))
        time.sleep(0.1)
