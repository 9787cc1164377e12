"""Issue 11's GPU session as one command: both push lanes at once on one GPU, sized to fit.

    python bench/gpu_push.py --data DATA --runs RUNS --out OUT [--budget 420] [--smoke]

1. Measure each lane's training rate alone (a bare step of its model, uncompiled, a few
   seconds each: `bench/train_speed.py`'s `bare_step_rate`), then size the lanes so that both,
   sharing the GPU, end within `--budget` seconds: the transfer lane's epochs, the scratch
   lane's width (the widest ResNet-18 that still gets `--min-epochs`) and its epochs.
2. Train both lanes concurrently (`tinyviz train` processes); past the budget plus a margin
   a lane is stopped (SIGTERM: it stops cleanly and can be resumed).
3. Score each (plain and flip TTA, `tinyviz evaluate`), write its analysis (`tinyviz
   analyse`), and export it in half precision (`tinyviz export`).
4. Pack the exports into OUT as a tar split into 15 MB parts, with a summary JSON.
`--smoke` (or SMOKE=1) shrinks everything (a few hundred images, one epoch) to check it all
on a CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

TRAIN_IMAGES = 100_000
LANES = {
    # EfficientNet-Lite2 (ImageNet 77.6%) fine-tuned at 224 px
    "transfer": dict(
        model="effnet_lite2",
        batch=256,
        options={"resolution": 224, "drop_connect": 0.2},
        args=["--lr=0.05", "--weight-decay=5e-05", "--warmup=0.2", "--snapshots=2"],
    ),
    # ResNet-18 (width chosen from the rate) with mixup/CutMix, label smoothing, EMA
    "scratch": dict(
        model="resnet18",
        batch=512,
        options={},
        args=[
            "--mixup=0.2",
            "--cutmix=1.0",
            "--mix-prob=0.5",
            "--label-smoothing=0.1",
            "--ema=0.999",
            "--snapshots=2",
        ],
    ),
}
WIDTHS = (128, 96, 64)


def rate(model: str, batch: int, options: dict, smoke: bool) -> float:
    """Training images per second of a bare step of `model`, alone on the device."""
    sys.path.insert(0, str(Path(__file__).parent))
    from train_speed import bare_step_rate

    from tinyviz.config import TrainConfig

    cfg = TrainConfig(
        model=model, model_options=options, batch_size=8 if smoke else batch, compile=False
    )
    return bare_step_rate(cfg, steps=2 if smoke else 15, warmup=1 if smoke else 5)


def plan(args) -> dict[str, dict]:
    """Each lane's epochs (and the scratch lane's width) from measured rates."""
    share = args.budget / 2  # two lanes share the GPU: each gets about half of it
    lanes = {}
    t = LANES["transfer"]
    r = rate(t["model"], t["batch"], t["options"], args.smoke)
    lanes["transfer"] = {**t, "rate": r, "epochs": max(1, int(share * r / TRAIN_IMAGES))}
    s = LANES["scratch"]
    for width in WIDTHS:
        options = {**s["options"], "width": width}
        r = rate(s["model"], s["batch"], options, args.smoke)
        epochs = int(share * r / TRAIN_IMAGES)
        if epochs >= args.min_epochs or width == WIDTHS[-1]:
            lanes["scratch"] = {**s, "options": options, "rate": r, "epochs": max(1, epochs)}
            break
    if args.smoke:
        for lane in lanes.values():
            lane["epochs"] = 1
    return lanes


def command(name: str, lane: dict, args) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "tinyviz",
        "train",
        f"--data={args.data}",
        f"--out={args.runs}/{name}",
        f"--model={lane['model']}",
        f"--epochs={lane['epochs']}",
        f"--batch-size={lane['batch']}",
        "--quiet",
        *lane["args"],
        *[f"--opt={k}={json.dumps(v)}" for k, v in lane["options"].items()],
    ]
    if args.smoke:
        cmd += ["--train-limit=400", "--val-limit=200", "--batch-size=50", "--device=cpu"]
    else:
        cmd += ["--compile"]
    return cmd


def train_all(lanes: dict, args) -> dict[str, int]:
    """Both lanes at once; a lane still running past the deadline is stopped cleanly."""
    procs = {}
    for name, lane in lanes.items():
        log = open(Path(args.runs) / f"{name}.log", "wb")  # noqa: SIM115 - the child's
        procs[name] = subprocess.Popen(
            command(name, lane, args),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    # a CPU smoke run is slow by design: only the device's run has a deadline
    deadline = time.monotonic() + (float("inf") if args.smoke else args.budget + args.margin)
    while any(p.poll() is None for p in procs.values()) and time.monotonic() < deadline:
        time.sleep(5)
    for p in procs.values():
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    return {name: p.wait() for name, p in procs.items()}


def tinyviz(*argv: str) -> dict:
    res = subprocess.run([sys.executable, "-m", "tinyviz", *argv], capture_output=True, text=True)
    lines = res.stdout.strip().splitlines()
    return (
        json.loads(lines[-1])
        if res.returncode == 0 and lines
        else {"error": res.stderr.strip().splitlines()[-1:]}
    )


def finish(name: str, args) -> dict:
    run = f"{args.runs}/{name}"
    limit = ["--limit=200"] if args.smoke else []
    plain = tinyviz("evaluate", run, f"--data={args.data}", *limit)
    flip = tinyviz("evaluate", run, f"--data={args.data}", "--tta=flip", *limit)
    analysed = tinyviz("analyse", run, f"--data={args.data}")
    exported = tinyviz("export", run, f"{args.runs}/ship/{name}")
    return {"plain": plain, "flip": flip, "analysis": analysed, "export": exported}


def pack(args, summary: dict) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    tar = Path(args.runs) / "ship.tar"
    with tarfile.open(tar, "w") as t:
        t.add(Path(args.runs) / "ship", arcname="ship")
        for name in summary["lanes"]:
            t.add(Path(args.runs) / f"{name}.log", arcname=f"logs/{name}.log")
    subprocess.run(["split", "-b", "15M", "-d", str(tar), str(out / "ship.tar.part")], check=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--runs", default="runs/gpu")
    p.add_argument("--out", default=os.environ.get("OUT", "runs/gpu-out"))
    p.add_argument("--budget", type=float, default=420, help="seconds of training, both lanes")
    p.add_argument("--margin", type=float, default=60, help="compile and evaluation slack")
    p.add_argument("--min-epochs", type=int, default=60, help="the scratch lane's minimum")
    p.add_argument(
        "--smoke",
        action="store_true",
        default=os.environ.get("SMOKE") == "1",
        help="a few hundred images, one epoch, on the CPU (also SMOKE=1)",
    )
    args = p.parse_args()
    Path(args.runs).mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    lanes = plan(args)
    print(
        json.dumps(
            {n: {k: v for k, v in lane.items() if k != "args"} for n, lane in lanes.items()}
        ),
        flush=True,
    )
    codes = train_all(lanes, args)
    summary = {
        "lanes": {
            n: {
                "rate_alone_img_s": round(lane["rate"]),
                "epochs": lane["epochs"],
                "options": lane["options"],
                "train_rc": codes[n],
                **finish(n, args),
            }
            for n, lane in lanes.items()
        },
        "seconds": round(time.monotonic() - start),
    }
    pack(args, summary)
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
