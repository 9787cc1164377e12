"""The trainer: one epoch loop over device-resident data, with everything a run folder needs.

Shape follows torchvision's classification reference (`train_one_epoch`, `evaluate`, `main`)
kept short. Speed comes from keeping the data and augmentation on the device and from never
synchronising inside the epoch except for a periodic finiteness check. Robustness: every file
write is atomic, state for `--resume` is saved at the end of each epoch, and a non-finite loss
stops the run with the last good checkpoint intact.

Epoch views (`TrainConfig.epoch_views`): at each chosen epoch the weights are also kept in
half precision in `RUN/epochs/E/`, and right after the epoch is committed that epoch's
analysis is computed there (the same pass as the finished run's, `tinyviz.explain.analysis`),
so the explain pages can show the run across its epochs while it still trains.
"""

from __future__ import annotations

import dataclasses
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

from .. import io, models
from ..config import TrainConfig
from ..data.batches import DeviceSplit
from ..data.cache import TinyImageNet
from ..errors import CheckpointError, ConfigError, Stopped, TinyvizError, TrainingError
from ..runs import folder as runfiles
from ..runs.evaluate import predict, scores
from ..runs.folder import ClassList, DataInfo, EpochMetrics, ModelInfo, RunConfig, RunFolder
from ..runs.weights import save_weights
from ..runtime import distributed
from ..runtime.device import autocast, environment, pick_device
from .augment import augment, mix
from .monitor import Monitor
from .state import load_state, read_counters, save_state

FINITE_CHECK_EVERY = 50  # steps between the (synchronising) checks of the running loss


@dataclass
class Trainer:
    """The pieces of one run, built by `setup` and used by the epoch loop."""

    cfg: TrainConfig
    out: RunFolder
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
    snapshots: list[runfiles.Snapshot] = field(default_factory=list)

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


def train(
    cfg: TrainConfig | None,
    data: TinyImageNet,
    out: Path,
    *,
    resume: bool = False,
    epochs: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> Path:
    """Train `cfg` on `data` into the run folder `out`; with `resume`, continue that run
    (for `epochs` in all, when given: a finished run can be extended)."""
    folder = RunFolder(Path(out))
    cfg = (
        resumed_config(folder, epochs)
        if resume
        else fit_input_size(prepare_new(cfg, folder, overwrite), data)
    )
    check(cfg, data)
    t = setup(cfg, data, folder, resume)
    monitor = Monitor(
        folder,
        epochs=cfg.epochs,
        steps_per_epoch=t.steps_per_epoch,
        step=t.step,
        epoch=t.epoch,
        batch_size=cfg.batch_size,
        desc=cfg.model,
        bar=progress and t.world.main,
        write=t.world.main,
    )
    with _stop_on_sigterm():
        try:
            while t.epoch < cfg.epochs:
                row = run_epoch(t, monitor)
                if t.world.main:
                    log(_summary(row))
                if t.world.main and row.epoch in cfg.epoch_views:
                    write_view_analysis(t, data, row.epoch, progress=progress, log=log)
            monitor.finish("done")
        except Stopped:
            monitor.finish("stopped", stopped_message(t.epoch))
            raise
        except TrainingError as e:
            monitor.finish("failed", str(e))
            raise
        finally:
            distributed.shutdown()
    if t.world.main:
        write_analysis(t, data, progress=progress, log=log)
    return folder.path


def write_analysis(t: Trainer, data: TinyImageNet, *, progress: bool, log) -> None:
    """Leave the dashboard's analysis of the finished run in its folder, computed on the
    device it trained on (one pass over the validation set: seconds on a GPU), and on a GPU
    that of every kept snapshot too. It never fails the training: what is missing is
    computed later, by `tinyviz analyse` or the dashboard's background job.
    """
    from ..explain import analysis  # explain sits below training (tests/test_architecture)

    snapshots = [s.file for s in t.snapshots] if t.device.type == "cuda" else []
    try:
        for snapshot in [None, *snapshots]:
            bar = _analysis_bar() if progress else None
            analysis.compute(t.out.path, data, device=t.device, progress=bar, snapshot=snapshot)
        log(f"analysis of the validation set written to {t.out.analysis}")
        for epoch in t.out.epoch_views():  # those a kill or an error left without one
            if not analysis.is_cached(t.out.path, data, epoch=epoch):
                write_view_analysis(t, data, epoch, progress=progress, log=log)
    except (TinyvizError, OSError, RuntimeError, ValueError) as e:
        log(f"no analysis written ({str(e).splitlines()[0]}); `tinyviz analyse` computes it")
    except Stopped:
        log("analysis stopped; `tinyviz analyse` (or the dashboard) continues it")


def write_view_analysis(t: Trainer, data: TinyImageNet, epoch: int, *, progress: bool, log) -> None:
    """The analysis of epoch `epoch`'s view, in its own folder. Like `write_analysis` it never
    fails the training (`tinyviz analyse` computes what is missing); a stop request does stop
    it, after the epoch was committed, and the saved chunks are resumed later."""
    from ..explain import analysis

    try:
        bar = _analysis_bar() if progress else None
        analysis.compute(t.out.path, data, device=t.device, progress=bar, epoch=epoch)
        log(f"epoch {epoch}'s view and its analysis written to {t.out.epoch_view(epoch)}")
    except (TinyvizError, OSError, RuntimeError, ValueError) as e:
        log(
            f"epoch {epoch}'s view has no analysis ({str(e).splitlines()[0]}); "
            "`tinyviz analyse` computes it"
        )


def _analysis_bar():
    """A terminal bar for the analysis pass (`analysis.Progress` takes a fraction)."""
    from tqdm import tqdm

    bar = tqdm(total=100, desc="analysis", unit="%", leave=False)

    def report(fraction: float, message: str) -> None:
        bar.update(round(fraction * 100) - bar.n)
        if fraction >= 1:
            bar.close()

    return report


def stopped_message(epochs_done: int) -> str:
    if epochs_done == 0:
        return "stopped by the user before the first epoch ended: nothing was saved to resume"
    return f"stopped by the user; Resume continues after epoch {epochs_done}"


def prepare_new(cfg: TrainConfig | None, folder: RunFolder, overwrite: bool) -> TrainConfig:
    """A new run may not land on an existing one (its weights and records would be mixed
    with another model's) unless the user says `overwrite`; then the old files go first."""
    if cfg is None:
        raise ConfigError("a new run needs a TrainConfig")
    if folder.path.exists() and not folder.path.is_dir():
        raise ConfigError(f"{folder.path} exists and is not a folder")
    if folder.holds_run():
        if not overwrite:
            raise ConfigError(
                f"{folder.path} already holds a run: resume it (--resume), "
                "choose another folder, or pass --overwrite to replace it"
            )
        clear_run(folder)
    return cfg


def clear_run(folder: RunFolder) -> None:
    """Remove a run's files (only the files a run writes; anything else stays)."""
    import shutil

    for name in (
        folder.CONFIG,
        folder.METRICS,
        folder.WEIGHTS,
        folder.EVALS,
        folder.RESUME,
        folder.PROGRESS,
        *folder.LEGACY_RESUME,
    ):
        (folder.path / name).unlink(missing_ok=True)
    for sub in (folder.snapshots, folder.analysis, folder.epochs):
        shutil.rmtree(sub, ignore_errors=True)


def resumed_config(folder: RunFolder, epochs: int | None) -> TrainConfig:
    """The run's own config (extended to `epochs` when given), if it can be resumed."""
    if not folder.config.exists():
        raise ConfigError(
            f"nothing to resume in {folder.path}: no run was started there "
            "(train --out ... starts one)"
        )
    cfg = runfiles.read_config(folder).train
    counters = read_counters(folder)
    if epochs is not None:
        if epochs < counters["epoch"]:
            raise ConfigError(
                f"{folder.name} has already trained {counters['epoch']} epochs; "
                f"--epochs {epochs} cannot shorten it"
            )
        cfg = cfg.replace(epochs=epochs)
    elif counters["epoch"] >= cfg.epochs:
        raise ConfigError(
            f"{folder.name} already finished all {cfg.epochs} epochs: pass "
            "--epochs N to train it further"
        )
    return cfg


def fit_input_size(cfg: TrainConfig, data: TinyImageNet) -> TrainConfig:
    """A model whose fully connected layer fixes its input (`any_input_size` False) is built
    for the data's image size, recorded in its options (`input_size`) so it is rebuilt so."""
    if data.size == 64 or "input_size" in cfg.model_options or models.spec(cfg.model).pretrained:
        return cfg
    with torch.device("meta"):
        net = models.create(cfg.model, num_classes=len(data.classes), **cfg.model_options)
    if getattr(net, "any_input_size", True):
        return cfg
    return dataclasses.replace(cfg, model_options={**cfg.model_options, "input_size": data.size})


def check(cfg: TrainConfig, data: TinyImageNet) -> None:
    """Everything that can be refused before the first step: the model and its options,
    the device, the batch against the data."""
    models.check_options(cfg.model, cfg.model_options, len(data.classes))
    pick_device(cfg.device)
    if cfg.batch_size > (cfg.train_limit or len(data.train)):
        raise ConfigError(
            f"batch size {cfg.batch_size} is larger than the "
            f"{cfg.train_limit or len(data.train):,} training images"
        )


def setup(cfg: TrainConfig, data: TinyImageNet, out: RunFolder, resume: bool) -> Trainer:
    world, device = distributed.init(pick_device(cfg.device))
    if cfg.batch_size % world.size:
        raise ValueError(f"batch size {cfg.batch_size} does not split over {world.size} processes")
    torch.manual_seed(cfg.seed)
    model = models.create(cfg.model, num_classes=len(data.classes), **cfg.model_options)
    if not models.spec(cfg.model).pretrained:
        set_input_statistics(model, data.train.images, cfg.train_limit)
    info = {
        "params": models.param_count(model),
        "flops": models.flops_per_image(model, data.size),
    }
    model.to(device)
    if device.type == "cuda" and cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    forward = distributed.wrap(model, world, device)
    t = Trainer(
        cfg=cfg,
        out=out,
        device=device,
        model=model,
        world=world,
        forward=torch.compile(forward) if cfg.compile else forward,
        ema=make_ema(model, cfg.ema),
        optimizer=make_optimizer(model, cfg),
        trainset=DeviceSplit(data.train.images, data.train.labels, device, cfg.train_limit),
        valset=DeviceSplit(data.val.images, data.val.labels, device, cfg.val_limit),
    )
    if resume:
        resume_from(t, data)
    elif world.main:
        write_config(t, data, info)
    return t


def resume_from(t: Trainer, data: TinyImageNet) -> None:
    stored = runfiles.read_config(t.out)
    if list(stored.classes.wnids) != list(data.classes.wnids):
        raise CheckpointError(f"{t.out.name} was trained on other classes than this data set's")
    state = load_state(t.out, t.model, t.ema, t.optimizer)
    t.epoch, t.step = state["epoch"], state["step"]
    t.snapshots = list(runfiles.read_snapshots(t.out))
    if not t.world.main:
        return
    io.remove_stale_in(t.out.path)
    io.remove_stale_in(t.out.snapshots)
    # an epoch logged after its state was saved is trained again, and so is its view
    runfiles.write_metrics(t.out, [r for r in runfiles.read_metrics(t.out) if r.epoch <= t.epoch])
    drop_views_after(t.out, t.epoch)
    if stored.train.epochs != t.cfg.epochs:  # extended: the config says the new total
        runfiles.write_config(t.out, dataclasses.replace(stored, train=t.cfg))


def drop_views_after(folder: RunFolder, epoch: int) -> None:
    """Remove the views of epochs after `epoch`: a kill between a view and the epoch's resume
    state leaves one of an epoch that is trained again (and kept again, once). The views
    kept lose what a killed write left (their analyses resume on their own)."""
    import shutil

    for view in folder.epoch_folders():
        if int(view.name) > epoch:
            shutil.rmtree(view, ignore_errors=True)
        else:
            io.remove_stale_in(view)


def write_config(t: Trainer, data: TinyImageNet, info: dict) -> None:
    spec = models.spec(t.cfg.model)
    t.out.path.mkdir(parents=True, exist_ok=True)
    io.remove_stale_in(t.out.path)
    runfiles.write_config(
        t.out,
        RunConfig(
            model=ModelInfo(
                t.cfg.model, dict(t.cfg.model_options), spec.family, spec.source, **info
            ),
            train=t.cfg,
            classes=ClassList(
                tuple(data.classes.wnids), tuple(data.classes.names), tuple(data.classes.full_names)
            ),
            data=DataInfo(str(data.source), len(t.trainset), len(t.valset), data.size),
            env={**environment(t.device), "processes": t.world.size},
            created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        ),
    )
    runfiles.write_metrics(t.out, [])


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
    if mean.dim() == 4 and mean.shape[-2:] != norm.mean.shape[-2:]:  # a mean image, resampled
        mean = F.interpolate(mean, size=norm.mean.shape[-2:], mode="bilinear", align_corners=False)
    norm.mean.copy_(mean.reshape(norm.mean.shape))
    norm.std.copy_(std.reshape(norm.std.shape))


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD / Adam / AdamW, with no weight decay on norms and biases (1-D parameters)."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0
        )
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
    for i, (x, y) in enumerate(t.trainset.epoch(t.local_batch, order, shard=(w.rank, w.size))):
        loss, hits = train_step(t, x, y, gen, rng)
        loss_sum += loss * len(y)
        correct += hits
        seen += len(y)
        if (i + 1) % FINITE_CHECK_EVERY == 0:
            _check_finite(loss_sum, epoch, i + 1)
        monitor.step(epoch, t.step)
    _check_finite(loss_sum, epoch, t.steps_per_epoch)
    loss_sum, correct = distributed.all_sum(loss_sum, w), distributed.all_sum(correct, w)
    seen *= w.size
    train_seconds = time.perf_counter() - start
    row = EpochMetrics(
        epoch=epoch,
        train_loss=float(loss_sum) / seen,
        train_top1=float(correct) / seen,
        **validate(t),
        lr=lr_at(cfg, t.step, t.steps_per_epoch),
        seconds=round(time.perf_counter() - start, 3),
        train_seconds=round(train_seconds, 3),
        images_per_s=round(seen / train_seconds, 1),
    )
    end_of_epoch(t, row)
    monitor.epoch_done(row, t.step)
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
        loss = lam * loss + (1 - lam) * F.cross_entropy(
            logits, yb, label_smoothing=cfg.label_smoothing
        )
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
        kept = (
            f"the last good checkpoint (epoch {epoch - 1}) is kept"
            if epoch > 1
            else "no epoch had finished, so nothing was saved"
        )
        raise TrainingError(
            f"the loss became non-finite in epoch {epoch} (by step {step}); "
            f"{kept}: lower the learning rate or clip gradients"
        )


def validate(t: Trainer) -> dict:
    logp = predict(
        t.eval_model, t.valset, batch_size=t.cfg.eval_batch_size, precision=t.cfg.precision
    )
    s = scores(logp, t.valset.labels)
    return {"val_loss": s["loss"], "val_top1": s["top1"], "val_top5": s["top5"]}


def end_of_epoch(t: Trainer, row: EpochMetrics) -> None:
    """Persist the epoch: weights, snapshots, metrics, then the resume state, in that order."""
    if not t.world.main:  # the other processes hold the same weights; one writes
        t.epoch = row.epoch
        return
    weights = t.eval_model.state_dict()
    meta = {"epoch": str(row.epoch), "val_top1": f"{row.val_top1:.4f}"}
    save_weights(t.out.weights, weights, meta)
    keep_snapshot(t, row.epoch, row.val_top1, weights)
    keep_view(t, row.epoch, weights, meta)
    runfiles.append_metrics(t.out, row)
    t.epoch = row.epoch
    save_state(t.out, t.model, t.ema, t.optimizer, {"epoch": t.epoch, "step": t.step})


def keep_snapshot(t: Trainer, epoch: int, top1: float, weights: dict) -> None:
    """Keep the K best epochs by validation top-1 (seed 004's snapshot ensemble)."""
    k = t.cfg.snapshots
    if k <= 0:
        return
    entry = runfiles.Snapshot(epoch, top1, f"epoch_{epoch:03d}.safetensors")
    ranked = sorted([*t.snapshots, entry], key=lambda s: -s.top1)
    kept, dropped = ranked[:k], ranked[k:]
    if entry in kept:
        save_weights(t.out.snapshot(entry.file), weights, {"epoch": str(epoch)})
    runfiles.write_snapshots(t.out, kept)
    for s in dropped:
        t.out.snapshot(s.file).unlink(missing_ok=True)
    t.snapshots = kept


def keep_view(t: Trainer, epoch: int, weights: dict, meta: dict) -> None:
    """At a chosen epoch, its weights in half precision (as `export` ships them) in the
    epoch's view; its analysis follows once the epoch is committed (`write_view_analysis`)."""
    if epoch not in t.cfg.epoch_views:
        return
    meta = {**meta, "precision": "float16"}
    save_weights(t.out.epoch_weights(epoch), weights, meta, dtype=torch.float16)


def _summary(row: EpochMetrics) -> str:
    return (
        f"epoch {row.epoch}: train loss {row.train_loss:.3f} top-1 "
        f"{row.train_top1:.3f} | val loss {row.val_loss:.3f} top-1 "
        f"{row.val_top1:.4f} top-5 {row.val_top5:.4f} | {row.seconds:.1f} s, "
        f"{row.images_per_s:.0f} img/s"
    )


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
