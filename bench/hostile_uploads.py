"""Hostile uploads: every kind of tests/hostile.py through the app's decoding path, with costs.

    python bench/hostile_uploads.py [--run checkpoints/resnet18-push] [--kinds a,b,...]

Generates the corpus, decodes each file the way the pages do (`load_upload`: the size
check, then the shared worker pool with its 2 s deadline and 300 MB memory limit) and
prints one row per kind: bytes, outcome, wall and worker-CPU seconds, the worker's peak
resident memory above its idle size, and the server process's own peak above its
baseline. "Handled" means accepted with sane pixels within 2 s and 300 MB, or refused
with one line (`hostile.judge`). Then the worker's overhead on an ordinary 640 x 480
JPEG, against decoding in the server's process with plain Pillow, in the same run; and,
with `--run`, an upload's decode plus top-5 on the CPU.

Wall seconds depend on what else the machine runs (the uptime load is printed); the
worker's CPU seconds do not.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import hostile  # noqa: E402

from tinyviz.demo import decode, images, sandbox  # noqa: E402


def server_peak() -> int:
    """This process's resident peak since the last reset (Linux VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def reset_server_peak() -> int:
    Path("/proc/self/clear_refs").write_text("5")
    return server_peak()


def corpus_table(kinds: list[str]) -> None:
    rows, handled, worst = [], 0, {"wall": 0.0, "cpu": 0.0, "worker": 0, "server": 0}
    for kind in kinds:
        case = hostile.BY_KIND[kind]
        data = hostile.data_of(kind)
        base = reset_server_peak()
        out = hostile.run(data)
        grown = max(0, server_peak() - base)
        problems = hostile.judge(case, out)
        handled += not problems
        s = out.stats
        cpu = "killed" if s.killed else f"{s.cpu_seconds:.2f}"
        outcome = "accepted" if out.upload is not None else f"refused: {out.message}"
        mark = "" if not problems else "  <-- " + "; ".join(problems)
        rows.append(
            f"| {kind} | {len(data):,} | {outcome}{mark} | {s.seconds:.2f} | {cpu} "
            f"| {s.peak_bytes / 1e6:.0f} | {grown / 1e6:.0f} |"
        )
        worst["wall"] = max(worst["wall"], s.seconds)
        worst["cpu"] = max(worst["cpu"], 0 if s.killed else s.cpu_seconds)
        worst["worker"] = max(worst["worker"], s.peak_bytes)
        worst["server"] = max(worst["server"], grown)
    print(
        "| kind | bytes | outcome | wall s | worker CPU s | worker peak MB | server peak MB |\n"
        "|---|---:|---|---:|---:|---:|---:|"
    )
    print("\n".join(rows))
    print(
        f"\ntried {len(kinds)} / handled {handled}; worst: {worst['wall']:.2f} s wall, "
        f"{worst['cpu']:.2f} s worker CPU, {worst['worker'] / 1e6:.0f} MB worker peak, "
        f"{worst['server'] / 1e6:.0f} MB server peak (beyond their baselines)"
    )


def ordinary_jpeg() -> bytes:
    """A 640 x 480 photo-like JPEG: smooth gradients with sensor-like noise."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:480, 0:640]
    img = np.stack([x / 640 * 255, y / 480 * 255, (x + y) / 1120 * 255], -1)
    img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def plain_pillow(data: bytes) -> tuple[np.ndarray, Image.Image]:
    """What decoding in the server's process would do, with none of the checks."""
    img = Image.open(io.BytesIO(data))
    img.draft("RGB", (512, 384))
    img = img.convert("RGB")
    display = img.copy()
    display.thumbnail((512, 512), Image.Resampling.LANCZOS)
    return np.asarray(ImageOps.fit(img, (64, 64), Image.Resampling.LANCZOS)), display


def interleaved_ms(fns: dict[str, object], repeat: int) -> dict[str, float]:
    """Median milliseconds of each function, run in turns so that load hits all alike."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - start)
    return {k: statistics.median(v) * 1000 for k, v in times.items()}


def overhead(run: str | None) -> None:
    data = ordinary_jpeg()
    start = time.perf_counter()
    cold = sandbox.Pool(workers=1)
    cold.decode(data, 64)
    cold_ms = (time.perf_counter() - start) * 1000
    cold.close()
    images.load_upload(data)  # the shared pool is warm from the corpus; once more to be sure
    ms = interleaved_ms(
        {
            "plain": lambda: plain_pillow(data),
            "inproc": lambda: decode.decode(data, 64),
            "ours": lambda: images.load_upload(data),
        },
        50,
    )
    plain, inproc, ours = ms["plain"], ms["inproc"], ms["ours"]
    print(f"\nAn ordinary 640 x 480 JPEG ({len(data):,} bytes), median of 50 turns:\n")
    print("| decode | ms | ratio to plain Pillow |\n|---|---:|---:|")
    print(f"| plain Pillow in the server's process (no checks) | {plain:.1f} | 1.00 |")
    print(
        f"| our checks in the server's process (no worker) | {inproc:.1f} | {inproc / plain:.2f} |"
    )
    print(
        f"| load_upload: a warm worker (checks, pipe, limits) | {ours:.1f} | {ours / plain:.2f} |"
    )
    print(
        f"| the first upload after a start: a cold worker | {cold_ms:.0f} | {cold_ms / plain:.0f} |"
    )
    if run:
        top5(run, data)


def top5(run_path: str, data: bytes) -> None:
    from tinyviz.demo import predict
    from tinyviz.runs.folder import open_run
    from tinyviz.runs.weights import load_model

    run = open_run(Path(run_path))
    model = load_model(run)

    def both():
        rgb = images.load_upload(data).rgb
        return predict.predict_ensemble([model], rgb, run.class_names, run.wnids)

    rgb = images.load_upload(data).rgb
    alone = lambda: predict.predict_ensemble([model], rgb, run.class_names, run.wnids)  # noqa: E731
    both()
    ms = interleaved_ms({"both": both, "alone": alone}, 20)
    print(f"| upload to top-5 with {run.name} on the CPU (decode + predict) | {ms['both']:.1f} | |")
    print(f"| the same top-5 alone (predict on decoded pixels) | {ms['alone']:.1f} | |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default=None, help="a run folder, to time decode + top-5")
    p.add_argument("--kinds", default="", help="comma-separated kinds (default: all)")
    args = p.parse_args()
    kinds = args.kinds.split(",") if args.kinds else [c.kind for c in hostile.CASES]
    load = os.getloadavg()[0]
    print(
        f"Hostile uploads: {len(kinds)} kinds, limits {sandbox.SECONDS:g} s and "
        f"{hostile.MEMORY / 1e6:.0f} MB, decode budget {decode.DECODE_BUDGET / 1e6:.0f} MB, "
        f"{os.cpu_count()} CPUs, load average {load:.1f}\n"
    )
    for kind in kinds:  # make every file first: generation is not part of any figure
        hostile.data_of(kind)
    images.load_upload(hostile.encode(hostile.solid(hostile.RED), "PNG"))  # start the pool
    corpus_table(kinds)
    overhead(args.run)


if __name__ == "__main__":
    main()
