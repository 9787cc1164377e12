"""Hostile uploads: every kind in tests/hostile.py is handled, and the worker's limits hold.

Each file goes through the real decoding path (the size check, then a decoder worker with
the production memory limit). The corpus runs in a pool whose wall-clock deadline a
loaded test machine cannot reach; what is judged is the worker's own CPU time (at most
`sandbox.SECONDS`) and peak memory (at most 300 MB above its idle size). The deadline and
the memory limit themselves are tested below with pools that make them bite.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import hostile
import numpy as np
import pagetest
import pytest

from tinyviz.demo import decode, images, probe, sandbox


@pytest.fixture(scope="module", autouse=True)
def pool():
    """The shared pool for this module: production limits, a patient deadline."""
    p = sandbox.Pool(workers=2, seconds=120)
    old = sandbox.set_pool(p)
    yield p
    sandbox.set_pool(old)
    p.close()


KINDS = [
    pytest.param(c.kind, id=c.kind, marks=[pytest.mark.slow] if c.slow else [])
    for c in hostile.CASES
]


@pytest.mark.parametrize("kind", KINDS)
def test_hostile_upload_is_handled(kind, pool):
    case = hostile.BY_KIND[kind]
    out = hostile.run(hostile.data_of(kind), pool)
    assert hostile.judge(case, out, cpu=True) == [], (out.message, out.stats)


def test_corpus_is_broad():
    kinds = [c.kind for c in hostile.CASES]
    assert len(kinds) >= 60 and len(set(kinds)) == len(kinds)
    for prefix in ("jpeg", "png", "gif", "webp", "bmp", "tiff", "heic"):
        assert sum(k.startswith(prefix) for k in kinds) >= 3, prefix
    expects = {c.expect for c in hostile.CASES}
    assert expects == {"accept", "refuse", "either"}


def test_judge_catches_what_is_not_handled():
    ok = hostile.Case("x", bytes, "accept", hostile.centre_is(hostile.RED))
    stats = sandbox.Stats(0.1, 0.1, 1000, False)
    red = images.load_upload(hostile.encode(hostile.solid(hostile.RED), "PNG"))
    assert hostile.judge(ok, hostile.Outcome(red, None, stats)) == []
    blue = images.load_upload(hostile.encode(hostile.solid(hostile.BLUE), "PNG"))
    assert hostile.judge(ok, hostile.Outcome(blue, None, stats)) == ["accepted with wrong pixels"]
    assert hostile.judge(ok, hostile.Outcome(None, "a\nb", stats))[0].startswith("refusal is not")
    slow = sandbox.Stats(9.0, 9.0, 400_000_000, False)
    assert len(hostile.judge(ok, hostile.Outcome(red, None, slow))) == 2


# ------------------------------------------------------------------------ the worker


def test_deadline_stops_a_slow_decode_and_the_pool_recovers():
    """Judged by the worker's CPU time, not the wall clock: a decode that needs about 0.5 s
    of CPU is stopped once it has used its 0.05 s, however busy the machine (a worker
    starved of CPU uses none, and is not stopped early either)."""
    p = sandbox.Pool(workers=1, seconds=0.05)
    try:
        slow = hostile._jpeg_scan_flood(60, (4000, 3000))()  # 0.5 s of CPU, under the caps
        out = hostile.run(slow, p)
        assert out.upload is None and out.message == sandbox.TOO_SLOW.format(0.05)
        assert out.stats.killed and out.stats.cpu_seconds >= 0.05  # killed, and not early
        p.seconds = 30.0  # the next worker may take its time: it must start afresh
        again = hostile.run(hostile.encode(hostile.solid(hostile.RED), "PNG"), p)
        assert again.upload is not None and not again.stats.killed
    finally:
        p.close()


def test_memory_limit_stops_what_the_estimate_lets_through():
    p = sandbox.Pool(workers=1, seconds=60, memory=40_000_000)
    try:
        big = hostile.png(4800, 4800, 8, 2)  # 92 MB of RGB: inside the budget, not 40 MB
        out = hostile.run(big, p)
        assert out.upload is None and out.message == decode.OUT_OF_MEMORY
        small = hostile.run(hostile.encode(hostile.solid(hostile.RED), "PNG"), p)
        assert small.upload is not None
    finally:
        p.close()


def test_a_worker_killed_while_idle_is_replaced():
    p = sandbox.Pool(workers=1, seconds=60)
    try:
        data = hostile.encode(hostile.solid(hostile.RED), "PNG")
        assert hostile.run(data, p).upload is not None
        (worker,) = p._all
        os.kill(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait()
        assert hostile.run(data, p).upload is not None
        assert worker not in p._all
    finally:
        p.close()


def test_warm_starts_one_worker_that_the_first_decode_uses():
    p = sandbox.Pool(workers=2, seconds=60)
    try:
        p.warm()
        p.warm()  # a second call while the first is starting adds nothing
        worker = p._idle.get(timeout=sandbox.START_SECONDS)
        p._idle.put(worker)
        assert hostile.run(hostile.encode(hostile.solid(hostile.RED), "PNG"), p).upload
        assert p._all == {worker}
    finally:
        p.close()


def test_threads_share_the_pool():
    colours = [(i * 40 % 256, 255 - i * 30 % 256, i * 70 % 256) for i in range(8)]
    blobs = [hostile.encode(hostile.solid(c, (120, 90)), "JPEG", quality=95) for c in colours]
    results: dict[int, np.ndarray] = {}

    def work(i):
        results[i] = images.load_upload(blobs[i]).rgb

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, c in enumerate(colours):
        assert np.abs(results[i][32, 32].astype(int) - c).max() <= 6
        assert np.array_equal(results[i], images.load_upload(blobs[i]).rgb)


def test_results_are_plain_read_only_arrays():
    reply = sandbox.pool().decode(hostile.encode(hostile.noise(100, 80), "PNG"), 64)
    assert sandbox.pool().seconds == 120  # this module's pool: what load_upload uses here
    assert set(reply.header) >= {"ok", "format", "rgb_size", "display_size", "peak", "cpu"}
    up = images.from_reply(reply)
    assert up.rgb.shape == (64, 64, 3) and not up.rgb.flags.writeable
    assert up.original.size == (100, 80) and up.format == "PNG"


@pytest.mark.slow
def test_heic_without_its_plugin_says_how_to_share_a_jpeg():
    heic = hostile._heic(hostile.solid(hostile.RED, (64, 64)))
    code = (
        "import sys; sys.modules['pillow_heif'] = None\n"
        "from tinyviz.demo import decode\n"
        "decode.register_plugins()\n"
        "try:\n    decode.decode(sys.stdin.buffer.read())\n"
        "except decode.ImageError as e:\n    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], input=heic, capture_output=True, timeout=120, check=True
    )
    assert out.stdout.decode().strip() == decode.HEIC_UNSUPPORTED
    assert "JPEG" in decode.HEIC_UNSUPPORTED and "\n" not in decode.HEIC_UNSUPPORTED


def test_a_heic_over_the_budget_falls_back_to_its_thumbnail(monkeypatch):
    """A 24 MP iPhone photo is over the budget; its embedded thumbnail still serves the model.
    (In this process with a small budget: encoding a real 24 MP HEIC takes minutes.)"""
    img = hostile.solid(hostile.RED, (640, 480))
    img.paste(hostile.BLUE, (0, 0, 320, 480))
    with_thumb = hostile._heic(img, thumbnails=[160])
    decode.register_plugins()
    monkeypatch.setattr(decode, "DECODE_BUDGET", 1_000_000)  # 640 x 480 x 8 bytes is over
    d = decode.decode(with_thumb, 64)
    assert d.original_size == (640, 480) and d.display_size == (160, 120)
    rgb = np.frombuffer(d.rgb, np.uint8).reshape(64, 64, 3)
    assert rgb[32, 2, 2] > 150 and rgb[32, 61, 0] > 150  # blue left, red right
    with pytest.raises(decode.ImageError, match="share it as JPEG"):
        decode.decode(hostile._heic(img), 64)  # no thumbnail: refused in one line


# ------------------------------------------------------------------------ the probe


def test_jpeg_layout_counts_blocks_scans_and_data():
    flat = hostile.encode(hostile.solid(hostile.RED, (640, 480)), "JPEG", optimize=True)
    layout = probe.jpeg_layout(flat)
    assert (layout.width, layout.height, layout.scans) == (640, 480, 1)
    assert layout.blocks == 4800 + 2 * 1200 and not layout.progressive  # 4:2:0
    assert layout.least_scan_bytes <= layout.scan_bytes < 3 * layout.least_scan_bytes
    prog = probe.jpeg_layout(hostile.encode(hostile.noise(640, 480), "JPEG", progressive=True))
    assert prog.progressive and prog.scans == 10 and prog.coefficient_bytes == 7200 * 128
    lie = probe.jpeg_layout(hostile.jpeg_with_size(flat, 9000, 9000))
    assert lie.scan_bytes < lie.least_scan_bytes


def test_floods_are_counted_with_a_cap():
    with pytest.raises(probe.Flood, match="JPEG segments"):
        probe.jpeg_layout(b"\xff\xd8" + b"\xff\xfe\x00\x02" * (probe.MAX_PIECES + 1))
    assert probe.jpeg_layout(b"\xff\xd8" + b"\xff" * 1_000_000) is None
    ok = hostile.encode(hostile.solid(hostile.RED), "PNG")
    probe.check_png(ok)
    with pytest.raises(probe.Flood, match="PNG chunks"):
        probe.check_png(hostile.png(8, 8, before=hostile._chunk(b"ruSt", b"") * 20_000))
    probe.check_gif(hostile.encode(hostile.solid(hostile.RED), "GIF"))


# ------------------------------------------------------------------------ the page


@pytest.mark.slow
@pytest.mark.skipif(
    not (pagetest.RESNET / "model.safetensors").exists(), reason="no shipped resnet18-push"
)
def test_classify_refuses_crafted_and_hostile_files_in_one_line(monkeypatch, tmp_path):
    """A crafted request can send a file of any name (the browser's type filter is not a
    check); Classify refuses each in one line, with the name as text, and never raises."""
    monkeypatch.delenv("TINYVIZ_DATA", raising=False)
    monkeypatch.setenv("TINYVIZ_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.chdir(tmp_path)
    at = pagetest.open_page("pages/classify.py", tv_cls_runs=[str(pagetest.RESNET)])
    files = [
        ("notes.txt", b"just some text", "text/plain"),
        ("bomb.png", hostile.data_of("png-16bit-grey-9400"), "image/png"),
        ("**x** $y$.jpg", hostile.data_of("jpeg-header-lie-9000"), "image/jpeg"),
    ]
    at.file_uploader(key="tv_cls_files").set_value(files)
    pagetest.ok(at.run(), errors=True)
    errors = [e.value for e in at.error][::-1]  # the page shows the newest upload first
    assert len(errors) == 3 and all("\n" not in e for e in errors)
    assert "**notes.txt**: not an image" in errors[0]
    assert "too large to decode" in errors[1] and "only part" in errors[2]
    assert errors[2].startswith(r"**\*\*x\*\* \$y\$.jpg**")
