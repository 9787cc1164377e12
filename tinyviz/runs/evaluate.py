"""Evaluation: scores of a model or a run, test-time augmentation, snapshot ensembles, confusion.

Predictions are returned as log-probabilities so that single models, test-time augmentation
and ensembles (all averages of softmax probabilities, as seed 004's Eq. 2) share one format.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..config import TTA_MODES
from ..data.batches import DeviceSplit
from ..errors import CheckpointError, ConfigError
from ..runtime.device import autocast, pick_device
from . import folder as runfiles
from .folder import EvalRecord, Run, open_run
from .weights import build_model, load_state, load_weights

CROP = 56  # seed 004's corner crops


def tta_views(x: torch.Tensor, tta: str = "none", resize: bool = False) -> list[torch.Tensor]:
    """The views of a batch that test-time augmentation averages over.

    `10crop` is seed 004's: the whole image and its four 56x56 corner crops, each also flipped.
    The crops go to the network as they are (global pooling takes any size, and the objects
    keep their scale); `resize` brings them back to 64x64 for models with a fixed input.
    """
    if tta not in TTA_MODES:
        raise ValueError(f"tta must be one of {TTA_MODES}, not {tta!r}")
    if tta == "none":
        return [x]
    views = [x]
    if tta == "10crop":
        h, w = x.shape[-2:]
        c = CROP * h // 64
        for top, left in ((0, 0), (0, w - c), (h - c, 0), (h - c, w - c)):
            crop = x[..., top : top + c, left : left + c]
            if resize:
                crop = F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False)
            views.append(crop)
    return views + [v.flip(-1) for v in views]


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    split: DeviceSplit,
    *,
    tta: str = "none",
    batch_size: int = 1000,
    precision: str = "auto",
) -> torch.Tensor:
    """Log-probabilities `(N, C)` (float32, on the CPU) of a model on a split, in order."""
    model.eval()
    out = []
    for x, _ in split.epoch(batch_size, gen=None, drop_last=False):
        if split.device.type == "cpu":
            x = x.contiguous()  # oneDNN's channels-last kernels misbehave for some widths
        resize = not getattr(model, "any_input_size", False)
        probs, views = None, tta_views(x, tta, resize)
        for view in views:
            with autocast(split.device, precision):
                p = model(view).float().softmax(1)
            probs = p if probs is None else probs + p
        out.append((probs / len(views)).clamp_min(1e-12).log().cpu())
    return torch.cat(out)


def scores(logp: torch.Tensor, labels: torch.Tensor) -> dict:
    """top-1, top-5 and mean cross-entropy of log-probabilities against labels."""
    labels = labels.cpu()
    top5 = logp.topk(min(5, logp.shape[1]), dim=1).indices
    return {
        "top1": float((top5[:, 0] == labels).float().mean()),
        "top5": float((top5 == labels[:, None]).any(1).float().mean()),
        "loss": float(F.nll_loss(logp, labels)),
        "n": int(len(labels)),
    }


def ensemble(logps: list[torch.Tensor]) -> torch.Tensor:
    """Average of the members' probabilities, as log-probabilities."""
    return torch.stack([lp.exp() for lp in logps]).mean(0).clamp_min(1e-12).log()


def ensemble_curve(logps: list[torch.Tensor], labels: torch.Tensor) -> list[float]:
    """top-1 of the ensemble of the first 1..K members (seed 004, Fig. 6)."""
    labels = labels.cpu()
    total = torch.zeros_like(logps[0])
    curve = []
    for k, lp in enumerate(logps, 1):
        total += lp.exp()
        curve.append(float(((total / k).argmax(1) == labels).float().mean()))
    return curve


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """`cm[t, p]` counts images of true class t predicted as p."""
    flat = np.asarray(labels, np.int64) * num_classes + np.asarray(preds, np.int64)
    return np.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    totals = cm.sum(1)
    return np.divide(np.diag(cm), totals, out=np.zeros(len(cm)), where=totals > 0)


def most_confused(cm: np.ndarray, k: int = 20) -> list[tuple[int, int, int]]:
    """The k largest off-diagonal cells as `(true, predicted, count)`, largest first."""
    off = cm.copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(off, axis=None)[::-1][:k]
    pairs = [(int(i // len(cm)), int(i % len(cm)), int(off.flat[i])) for i in flat]
    return [p for p in pairs if p[2] > 0]


# ------------------------------------------------------------------ whole runs


def run_members(run: Run, ensemble_size: int) -> list[Path]:
    """The weight files to evaluate: the run's weights, or its best K snapshots."""
    if ensemble_size <= 1:
        return [run.folder.weights]
    if not run.snapshots:
        raise CheckpointError(f"{run.path} has no snapshots to ensemble")
    return [run.snapshot_path(s) for s in run.snapshots[:ensemble_size]]


def check_request(tta: str, ensemble_size: int, split: str, limit: int) -> None:
    """Refuse a request that cannot mean anything before any model is loaded."""
    if tta not in TTA_MODES:
        raise ConfigError(f"tta must be one of {', '.join(TTA_MODES)}, not {tta!r}")
    if ensemble_size < 1:
        raise ConfigError(f"an ensemble needs at least 1 member, not {ensemble_size}")
    if split not in ("val", "train"):
        raise ConfigError(f"split must be val or train, not {split!r}")
    if limit < 0:
        raise ConfigError(f"limit must be 0 (all images) or a positive count, not {limit}")


def evaluate_run(
    run_dir: Path,
    data,
    *,
    tta: str = "none",
    ensemble_size: int = 1,
    split: str = "val",
    device: str = "auto",
    limit: int = 0,
    batch_size: int = 500,
    record: bool = True,
) -> dict:
    """Score a run on a split of `data` (a `TinyImageNet`), and record the result in the run.

    The record (`evals.json`) is what the dashboard's leaderboard shows, with what it was
    measured on: split, image count, test-time augmentation and ensemble size.
    """
    check_request(tta, ensemble_size, split, limit)
    run = open_run(run_dir)
    check_classes(run, data)
    members = run_members(run, ensemble_size)
    dev = pick_device(device)
    part = getattr(data, split)
    target = DeviceSplit(part.images, part.labels, dev, limit)
    model = build_model(run.config, run.path).to(dev)
    start = time.perf_counter()
    logps = []
    for file in members:
        load_state(model, load_weights(file, inside=run.path), file)
        logps.append(predict(model, target, tta=tta, batch_size=batch_size))
    result = EvalRecord(
        split=split,
        tta=tta,
        ensemble=len(logps),
        **scores(ensemble(logps), target.labels),
        curve=tuple(ensemble_curve(logps, target.labels)) if len(logps) > 1 else (),
        seconds=round(time.perf_counter() - start, 2),
        run=run.name,
    )
    if record:
        runfiles.record_eval(run, result)
    return result.to_json()


def check_classes(run: Run, data) -> None:
    """A run can only be scored on (or explained with) the classes it was trained on."""
    if list(run.wnids) != list(data.classes.wnids):
        raise CheckpointError(
            f"{run.name} was trained on {len(run.wnids)} classes that differ from this data "
            f"set's {len(data.classes.wnids)}"
        )
