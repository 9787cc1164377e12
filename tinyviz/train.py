"""The trainer: one epoch loop over device-resident data, with everything a run folder needs.

Shape follows torchvision's classification reference (`train_one_epoch`, `evaluate`, `main`)
kept short. Speed comes from keeping the data and augmentation on the device and from never
synchronising inside the epoch except for a periodic finiteness check. Robustness: every file
write is atomic, state for `--resume` is saved at the end of each epoch, and a non-finite loss
stops the run with the last good checkpoint intact.
"""

from __future__ import annotations

import json
import math
import signal
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from . import checkpoints, distributed, models
from .augment import augment, mix
from .config import TrainConfig
from .data.batches import DeviceSplit
from .data.cache import TinyImageNet
from .evaluate import predict, scores
from .monitor import Monitor
from .runtime import autocast, environment, pick_device
from .train_state import load_state, save_state

FINITE_CHECK_EVERY = 50  # steps between the (synchronising) checks of the running loss


class TrainingError(Exception):
    """Training stopped for a reason the user must act on (divergence, bad resume)."""


class Stopped(Exception):
    """The run was asked to stop (SIGTERM from the dashboard's Stop button)."""


@dataclass
class Trainer:
    """The pieces of one run, built by `setup` and used by the epoch loop."""

    cfg: TrainConfig
    out: Path
    device: torch.device
    model: torch.nn.Module
    forward: Callable
    ema: AveragedModel | None
    optimizer: torch.optim.Optimizer
    trainset: DeviceSplit
    valset: DeviceSplit
    world: distributed.World = field(default_factory=distributed.World)
    epoch: int = 0  # epochs completed
    step: int = 0
    snapshots: list[dict] = field(default_factory=list)

    @property
    def local_batch(self) -> int:
        """Each process's share of the (global) batch."""
        return self.cfg.batch_size // self.world.size

    @property
    def steps_per_epoch(self) -> int:
        return self.trainset.steps(self.local_batch, shards=self.world.size)

    @property
    def memory_format(self) -> torch.memory_format:
        """Channels-last on CUDA (faster convolutions); plain NCHW on the CPU, where oneDNN's
        channels-last backward crashes for some layer widths (seen with torch 2.14)."""
        if self.device.type == "cuda" and self.cfg.channels_last:
            return torch.channels_last
        return torch.contiguous_format

    @property
    def eval_model(self) -> torch.nn.Module:
        return self.ema.module if self.ema is not None else self.model


# ------------------------------------------------------------------- entry


def train(cfg: TrainConfig, data: TinyImageNet, out: Path, *, resume: bool = False,
          progress: bool = True, log: Callable[[str], None] = print) -> Path:
    """Train `cfg` on `data` into the run folder `out`; with `resume`, continue that run."""
    out = Path(out)
    if resume:
        cfg = TrainConfig.from_json(checkpoints.read_json(out / checkpoints.CONFIG)["train"])
    t = setup(cfg, data, out, resume)
    monitor = Monitor(out, t, progress and t.world.main, write=t.world.main)
    with _stop_on_sigterm():
        try:
            while t.epoch < cfg.epochs:
                row = run_epoch(t, monitor)
                if t.world.main:
                    log(_summary(row))
            monitor.finish("done")
        except Stopped:
            monitor.finish("stopped", "stopped by the user; resume continues from the last epoch")
            raise
        except TrainingError as e:
            monitor.finish("failed", str(e))
            raise
        finally:
            distributed.shutdown()
    return out


def setup(cfg: TrainConfig, data: TinyImageNet, out: Path, resume: bool) -> Trainer:
    world, device = distributed.init(pick_device(cfg.device))
    if cfg.batch_size % world.size:
        raise ValueError(f"batch size {cfg.batch_size} does not split over {world.size} "
                         "processes")
    torch.manual_seed(cfg.seed)
    model = models.create(cfg.model, num_classes=len(data.classes), **cfg.model_options)
    if not models.spec(cfg.model).pretrained:
        set_input_statistics(model, data.train.images, cfg.train_limit)
    info = {"params": models.param_count(model), "flops": models.flops_per_image(model)}
    model.to(device)
    if device.type == "cuda" and cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    forward = distributed.wrap(model, world, device)
    t = Trainer(
        cfg=cfg, out=out, device=device, model=model, world=world,
        forward=torch.compile(forward) if cfg.compile else forward,
        ema=make_ema(model, cfg.ema), optimizer=make_optimizer(model, cfg),
        trainset=DeviceSplit(data.train.images, data.train.labels, device, cfg.train_limit),
        valset=DeviceSplit(data.val.images, data.val.labels, device, cfg.val_limit),
    )
    if resume:
        resume_from(t)
    elif world.main:
        write_config(t, data, info)
    return t


def resume_from(t: Trainer) -> None:
    if not (t.out / "state.json").exists():
        raise TrainingError(f"nothing to resume in {t.out}: no finished epoch was saved")
    state = load_state(t.out, t.model, t.ema, t.optimizer)
    t.epoch, t.step = state["epoch"], state["step"]
    t.snapshots = checkpoints.open_run(t.out).snapshots()
    if not t.world.main:
        return
    rows = [r for r in checkpoints.read_jsonl(t.out / checkpoints.METRICS)
            if r["epoch"] <= t.epoch]  # an epoch logged after its state was saved: redo it
    checkpoints.write_bytes(t.out / checkpoints.METRICS,
                            "".join(json.dumps(r) + "\n" for r in rows).encode())


def write_config(t: Trainer, data: TinyImageNet, info: dict) -> None:
    spec = models.spec(t.cfg.model)
    checkpoints.write_json(t.out / checkpoints.CONFIG, {
        "model": {"name": t.cfg.model, "options": dict(t.cfg.model_options),
                  "family": spec.family, "source": spec.source, **info},
        "train": t.cfg.to_json(),
        "classes": {"wnids": list(data.classes.wnids), "names": list(data.classes.names),
                    "full_names": list(data.classes.full_names)},
        "data": {"source": str(data.source), "train": len(t.trainset), "val": len(t.valset)},
        "env": {**environment(t.device), "processes": t.world.size},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    checkpoints.write_bytes(t.out / checkpoints.METRICS, b"")


# ------------------------------------------------------------------ pieces


def set_input_statistics(model: torch.nn.Module, images: np.ndarray, limit: int = 0) -> None:
    """Fill the model's `normalize` buffers from the training images (per channel or mean image).

    The statistics live in the model, so a checkpoint carries its own preprocessing.
    """
    norm = getattr(model, "normalize", None)
    if norm is None:
        return
    sample = np.asarray(images[: limit or 20000], dtype=np.float32) / 255  # N H W C
    x = torch.from_numpy(sample).permute(0, 3, 1, 2)
    std = x.std(dim=(0, 2, 3)).view(1, 3, 1, 1)
    mean = x.mean(0, keepdim=True) if norm.mean.shape[-1] > 1 else x.mean(dim=(0, 2, 3))
    norm.mean.copy_(mean.reshape(norm.mean.shape))
    norm.std.copy_(std.reshape(norm.std.shape))


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD / Adam / AdamW, with no weight decay on norms and biases (1-D parameters)."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum,
                               nesterov=cfg.nesterov and cfg.momentum > 0)
    opt = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return opt(groups, lr=cfg.lr)


def make_ema(model: torch.nn.Module, decay: float) -> AveragedModel | None:
    if decay <= 0:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def lr_at(cfg: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """The learning rate at a global step, for every schedule."""
    total = cfg.epochs * steps_per_epoch
    frac = step / max(total, 1)
    if cfg.schedule == "onecycle":
        up = max(cfg.warmup, 1e-8)
        if frac < up:
            return cfg.lr * (0.04 + 0.96 * frac / up)
        return cfg.lr * (1 - (frac - up) / (1 - up)) + 1e-7
    if cfg.schedule == "cosine":
        warm = cfg.warmup * steps_per_epoch
        if step < warm:
            return cfg.lr * (step + 1) / warm
        rest = (step - warm) / max(total - warm, 1)
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * rest))
    if cfg.schedule == "step":
        return cfg.lr * cfg.lr_decay ** ((step // steps_per_epoch) // cfg.decay_every)
    return cfg.lr


# -------------------------------------------------------------------- epoch


def run_epoch(t: Trainer, monitor: Monitor) -> dict:
    """Train one epoch, evaluate, save; returns the metrics row written."""
    cfg, epoch, w = t.cfg, t.epoch + 1, t.world
    order = torch.Generator(t.device).manual_seed(cfg.seed * 100_003 + epoch)  # same everywhere
    gen = torch.Generator(t.device).manual_seed(cfg.seed * 100_003 + epoch + 7919 * (w.rank + 1))
    rng = np.random.default_rng([cfg.seed, epoch, w.rank])
    torch.manual_seed(cfg.seed * 100_003 + epoch + w.rank)  # dropout: reproducible on resume
    t.model.train()
    loss_sum = torch.zeros((), device=t.device)
    correct = torch.zeros((), device=t.device)
    seen = 0
    start = time.perf_counter()
    for i, (x, y) in enumerate(t.trainset.epoch(t.local_batch, order,
                                                shard=(w.rank, w.size))):
        loss, hits = train_step(t, x, y, gen, rng)
        loss_sum += loss * len(y)
        correct += hits
        seen += len(y)
        if (i + 1) % FINITE_CHECK_EVERY == 0:
            _check_finite(loss_sum, epoch, i + 1)
        monitor.step(epoch, i + 1)
    _check_finite(loss_sum, epoch, t.steps_per_epoch)
    loss_sum, correct = distributed.all_sum(loss_sum, w), distributed.all_sum(correct, w)
    seen *= w.size
    train_seconds = time.perf_counter() - start
    row = {"epoch": epoch, "train_loss": float(loss_sum) / seen,
           "train_top1": float(correct) / seen, "lr": lr_at(cfg, t.step, t.steps_per_epoch)}
    row.update(validate(t))
    row.update(seconds=round(time.perf_counter() - start, 3),
               train_seconds=round(train_seconds, 3),
               images_per_s=round(seen / train_seconds, 1))
    end_of_epoch(t, row)
    monitor.epoch_done(row)
    return row


def train_step(t: Trainer, x, y, gen, rng) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step; returns the (detached) loss and the count of correct guesses."""
    cfg = t.cfg
    for g in t.optimizer.param_groups:
        g["lr"] = lr_at(cfg, t.step, t.steps_per_epoch)
    x = augment(x, cfg.augment, gen)
    x, ya, yb, lam = mix(x, y, cfg.augment, gen, rng)
    x = x.contiguous(memory_format=t.memory_format)
    with autocast(t.device, cfg.precision):
        logits = t.forward(x)
    logits = logits.float()
    loss = F.cross_entropy(logits, ya, label_smoothing=cfg.label_smoothing)
    if lam < 1:
        loss = lam * loss + (1 - lam) * F.cross_entropy(logits, yb,
                                                        label_smoothing=cfg.label_smoothing)
    t.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(t.model.parameters(), cfg.grad_clip)
    t.optimizer.step()
    if t.ema is not None:
        t.ema.update_parameters(t.model)
    t.step += 1
    return loss.detach(), (logits.argmax(1) == ya).sum()


def _check_finite(loss_sum: torch.Tensor, epoch: int, step: int) -> None:
    if not torch.isfinite(loss_sum):
        raise TrainingError(
            f"the loss became non-finite in epoch {epoch} (by step {step}); the last good "
            f"checkpoint (epoch {epoch - 1}) is kept: lower the learning rate or clip gradients")


def validate(t: Trainer) -> dict:
    logp = predict(t.eval_model, t.valset, batch_size=t.cfg.eval_batch_size,
                   precision=t.cfg.precision)
    s = scores(logp, t.valset.labels)
    return {"val_loss": s["loss"], "val_top1": s["top1"], "val_top5": s["top5"]}


def end_of_epoch(t: Trainer, row: dict) -> None:
    """Persist the epoch: weights, snapshots, metrics, then the resume state, in that order."""
    if not t.world.main:  # the other processes hold the same weights; one writes
        t.epoch = row["epoch"]
        return
    weights = t.eval_model.state_dict()
    meta = {"epoch": str(row["epoch"]), "val_top1": f"{row['val_top1']:.4f}"}
    checkpoints.save_weights(t.out / checkpoints.WEIGHTS, weights, meta)
    keep_snapshot(t, row["epoch"], row["val_top1"], weights)
    checkpoints.append_jsonl(t.out / checkpoints.METRICS, row)
    t.epoch = row["epoch"]
    save_state(t.out, t.model, t.ema, t.optimizer, {"epoch": t.epoch, "step": t.step})


def keep_snapshot(t: Trainer, epoch: int, top1: float, weights: dict) -> None:
    """Keep the K best epochs by validation top-1 (seed 004's snapshot ensemble)."""
    k = t.cfg.snapshots
    if k <= 0:
        return
    entry = {"epoch": epoch, "top1": top1, "file": f"epoch_{epoch:03d}.safetensors"}
    ranked = sorted([*t.snapshots, entry], key=lambda s: -s["top1"])
    kept, dropped = ranked[:k], ranked[k:]
    folder = t.out / checkpoints.SNAPSHOTS
    if entry in kept:
        checkpoints.save_weights(folder / entry["file"], weights, {"epoch": str(epoch)})
    checkpoints.write_json(folder / "index.json", kept)
    for s in dropped:
        (folder / s["file"]).unlink(missing_ok=True)
    t.snapshots = kept


def _summary(row: dict) -> str:
    return (f"epoch {row['epoch']}: train loss {row['train_loss']:.3f} top-1 "
            f"{row['train_top1']:.3f} | val loss {row['val_loss']:.3f} top-1 "
            f"{row['val_top1']:.4f} top-5 {row['val_top5']:.4f} | {row['seconds']:.1f} s, "
            f"{row['images_per_s']:.0f} img/s")


@contextmanager
def _stop_on_sigterm():
    """Turn SIGTERM into `Stopped` so the run folder says why it ended."""
    def handler(signum, frame):
        raise Stopped()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


