"""Training speed: tinyviz's trainer against a bare training step, and the data cache.

    python bench/train_speed.py [--data PATH] [--model resnet18] [--compile] [--epochs 2]

The bare step is the floor any trainer pays: the same model, optimizer, precision and memory
format, on one synthetic batch that already sits on the device (no data movement, no
augmentation, no bookkeeping). The trainer runs its real epoch loop (data on the device,
augmentation, learning-rate schedule, metrics, checkpoint at the epoch's end) on the real
data when `--data` is given, else on synthetic images of the same shape. Both are measured in
the same process, one after the other, so the ratio holds on a shared, noisy machine.
With `--data`, the cache is also built from scratch into a temporary folder and reopened.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tinyviz import models
from tinyviz.config import TrainConfig
from tinyviz.data import Classes, Split, TinyImageNet, load
from tinyviz.io import read_jsonl
from tinyviz.runtime import autocast, pick_device
from tinyviz.training.loop import train


def bare_step_rate(cfg: TrainConfig, steps: int, warmup: int) -> float:
    """Images/s of forward + backward + SGD step on one device-resident batch."""
    device = pick_device(cfg.device)
    options = dict(cfg.model_options)
    if models.spec(cfg.model).pretrained:
        options["pretrained"] = False  # the same arithmetic; no weights to read for a timing
    model = models.create(cfg.model, num_classes=200, **options).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    fwd = torch.compile(model) if cfg.compile else model
    opt = torch.optim.SGD(
        model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    x = torch.rand(cfg.batch_size, 3, 64, 64, device=device)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 200, (cfg.batch_size,), device=device)

    def step() -> None:
        with autocast(device, cfg.precision):
            out = fwd(x)
        loss = F.cross_entropy(out.float(), y, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return steps * cfg.batch_size / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def trainer_rate(cfg: TrainConfig, data: TinyImageNet) -> tuple[float, float]:
    """Images/s of the trainer's last epoch (the first one pays for compilation)."""
    out = Path(tempfile.mkdtemp(prefix="tinyviz-bench-"))
    try:
        train(cfg, data, out, progress=False, log=lambda line: None)
        rows = read_jsonl(out / "metrics.jsonl")
        return rows[-1]["images_per_s"], rows[-1]["seconds"]
    finally:
        shutil.rmtree(out, ignore_errors=True)


def synthetic(n_train: int, n_val: int = 10_000) -> TinyImageNet:
    rng = np.random.default_rng(0)

    def split(n: int) -> Split:
        images = rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
        return Split(images, rng.integers(0, 200, n).astype(np.int16), ())

    wnids = tuple(f"n{k:08d}" for k in range(200))
    return TinyImageNet(
        Path("synthetic"), Classes(wnids, wnids, wnids), split(n_train), split(n_val), (), Path("-")
    )


def cache_times(path: str) -> tuple[float, float, int]:
    """Seconds to build the cache from the archive (all cores) and to reopen it."""
    root = Path(tempfile.mkdtemp(prefix="tinyviz-cache-"))
    try:
        start = time.perf_counter()
        data = load(path, root=root, progress=False)
        built = time.perf_counter() - start
        start = time.perf_counter()
        load(path, root=root, progress=False)
        return built, time.perf_counter() - start, len(data.train) + len(data.val)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", help="Tiny ImageNet zip or folder (default: synthetic images)")
    p.add_argument("--model", default="resnet18")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--steps", type=int, default=100, help="timed bare steps")
    p.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="torch.compile (default: on with CUDA)",
    )
    p.add_argument("--train-limit", type=int, default=0)
    args = p.parse_args()
    device = pick_device()
    compile_ = args.compile if args.compile is not None else device.type == "cuda"
    cfg = TrainConfig(
        model=args.model,
        epochs=args.epochs,
        batch_size=args.batch_size,
        compile=compile_,
        snapshots=0,
        train_limit=args.train_limit,
    )
    rows = [
        ("device", torch.cuda.get_device_name() if device.type == "cuda" else "cpu"),
        ("torch", torch.__version__),
        ("model", f"{args.model}, batch {args.batch_size}, {'compiled' if compile_ else 'eager'}"),
    ]
    if args.data:
        built, reopened, n = cache_times(args.data)
        cores = len(__import__("os").sched_getaffinity(0))
        rows += [
            (
                "cache build",
                f"{built:.1f} s, {n / built:,.0f} img/s "
                f"({n / built / cores:,.0f} per core, {cores} cores)",
            ),
            ("cache reopen", f"{reopened * 1000:.0f} ms"),
        ]
        data = load(args.data, progress=False)
    else:
        data = synthetic(args.train_limit or (100_000 if device.type == "cuda" else 2048))
    bare = bare_step_rate(
        cfg, args.steps if device.type == "cuda" else 5, warmup=10 if device.type == "cuda" else 2
    )
    ours, epoch_s = trainer_rate(cfg, data)
    rows += [
        ("bare step", f"{bare:,.0f} img/s"),
        ("trainer", f"{ours:,.0f} img/s (epoch {epoch_s:.1f} s with validation)"),
        ("trainer / bare", f"{ours / bare:.1%}"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"\n| {'measurement':{width}s} | value |\n|{'-' * (width + 2)}|-------|")
    for k, v in rows:
        print(f"| {k:{width}s} | {v} |")


if __name__ == "__main__":
    main()
