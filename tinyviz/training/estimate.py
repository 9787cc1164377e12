"""How long a run will take, before it starts: a few training steps timed on this machine.

A CPU trains a logistic regression in seconds and a ResNet-18 epoch in hours, and a GPU
changes both by orders of magnitude, so the Train page measures instead of guessing: a few
real training steps (the trainer's optimizer, precision, loss and backward pass) of the
chosen model and batch size on random images, plus one forward pass for the validation
after each epoch. Results are cached per model, options, batch size and device for the
life of the process. Other jobs sharing the machine slow the measurement and the run alike.

On a GPU the steps are timed on the chosen batch, whose size matters there. On a CPU a
ResNet-18 step of 512 images would take minutes, so the timed batch is cut to what costs
about `CPU_PROBE_FLOPS` per step (a forward and backward pass are about 3 forward passes'
FLOPs); per image, a CPU's time hardly depends on the batch once it is a few images, and
a cheap model keeps its full batch, where per-step overheads do count.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F

from ..config import TrainConfig
from ..runtime.device import autocast, pick_device
from .loop import make_optimizer

CPU_PROBE_FLOPS = 20e9
MAX_STEPS, ENOUGH_SECONDS = 5, 2.0


@dataclass(frozen=True)
class Speed:
    """Measured throughput of one model and batch size on one device (images per second)."""

    model: str
    batch_size: int
    device: str
    train_images_per_s: float
    eval_images_per_s: float
    steps: int


def measure(cfg: TrainConfig, device: str | None = None) -> Speed:
    """`Speed` of `cfg`'s model, options, batch size and optimizer on `device` (cached)."""
    dev = str(pick_device(device or cfg.device))
    options = json.dumps(dict(cfg.model_options), sort_keys=True)
    return _measure(cfg.model, options, cfg.batch_size, cfg.optimizer, cfg.precision, dev)


@lru_cache(maxsize=32)
def _measure(
    model_name: str, options: str, batch_size: int, optimizer: str, precision: str, device: str
) -> Speed:
    from .. import models
    from ..models.stats import flops_per_image

    dev = torch.device(device)
    kw = json.loads(options)
    if models.spec(model_name).pretrained:
        kw["pretrained"] = False  # the speed is the same; no weights need be read
    model = models.create(model_name, num_classes=200, **kw).to(dev)
    cfg = TrainConfig(model=model_name, optimizer=optimizer, precision=precision)
    opt = make_optimizer(model, cfg)
    n = batch_size if dev.type == "cuda" else probe_batch(batch_size, flops_per_image(model))
    x = torch.rand(n, 3, 64, 64, device=dev)
    y = torch.randint(0, 200, (n,), device=dev)

    def step() -> None:
        with autocast(dev, precision):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    first = _timed(step, dev)  # pays for allocation and kernel selection: not counted...
    steps, seconds = 0, 0.0
    if first >= ENOUGH_SECONDS:  # ...unless one step is slow enough to be the measurement
        steps, seconds = 1, first
    while steps == 0 or (steps < MAX_STEPS and seconds < ENOUGH_SECONDS):
        seconds += _timed(step, dev)
        steps += 1
    model.eval()
    with torch.inference_mode(), autocast(dev, precision):
        eval_seconds = _timed(lambda: model(x), dev)
        if eval_seconds < ENOUGH_SECONDS:
            eval_seconds = _timed(lambda: model(x), dev)
    return Speed(
        model_name,
        batch_size,
        device,
        train_images_per_s=steps * n / seconds,
        eval_images_per_s=n / max(eval_seconds, 1e-9),
        steps=steps,
    )


def probe_batch(batch_size: int, flops: int) -> int:
    """The batch timed on a CPU: the chosen one, cut to about `CPU_PROBE_FLOPS` per step."""
    affordable = int(CPU_PROBE_FLOPS // max(3 * flops, 1))
    return max(1, min(batch_size, max(affordable, 4)))


def _timed(fn, device: torch.device) -> float:
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_for(speed: Speed, epochs: int, train_images: int, val_images: int) -> float:
    """Training time of `epochs` epochs: every epoch trains on `train_images` and then
    scores the `val_images` (data loading and checkpoints are small beside these)."""
    per_epoch = train_images / speed.train_images_per_s + val_images / speed.eval_images_per_s
    return epochs * per_epoch


def describe(seconds: float, epochs: int, device: str) -> str:
    """ "about 12 min for 2 epochs on the CPU", rounded as an estimate should be."""
    where = "the CPU" if device == "cpu" else f"the GPU ({device})" if "cuda" in device else device
    return f"{rough_duration(seconds)} for {epochs} epoch{'s' if epochs != 1 else ''} on {where}"


def rough_duration(seconds: float) -> str:
    if seconds < 60:
        return "under a minute"
    minutes = seconds / 60
    if minutes < 90:
        return f"about {max(1, round(minutes))} min"
    hours = minutes / 60
    if hours < 48:
        return f"about {hours:.1f} h".replace(".0 h", " h")
    return f"about {hours / 24:.0f} days"
