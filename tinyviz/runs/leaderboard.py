"""The Models page's numbers: one summary row per run, and the published reports' figures
beside them.

Each figure carries what it was measured on. The headline top-1 is `Run.score`, the one
accuracy a run is shown with everywhere (the evaluated plain single-model score when
`python -m tinyviz evaluate` recorded one, else the last epoch's); the best score with
test-time augmentation or a snapshot ensemble is shown separately, with its conditions.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from pathlib import Path

from ..io import shown_name
from . import reference
from .folder import EvalRecord, Run
from .roots import where


def best_boosted(run: Run) -> EvalRecord | None:
    """The best validation score with TTA or an ensemble, if any was recorded."""
    boosted = [e for e in run.evals if e.split == "val" and not e.plain]
    return max(boosted, key=lambda e: e.top1) if boosted else None


def row(run: Run) -> dict:
    score, boosted, metrics = run.score, best_boosted(run), run.metrics
    rates = [m.images_per_s for m in metrics if m.images_per_s]
    return {
        "run": run.name,
        "model": run.model_name,
        "source": run.config.model.source if run.imported else "ours",
        "data": data_label(run),
        "top1": score.top1,
        "top5": score.top5,
        "loss": score.loss,
        "measured_on": score.measured_on,
        "best_top1": boosted.top1 if boosted else None,
        "best_with": boosted.describe() if boosted else "",
        "params": run.config.model.params,
        "flops": run.config.model.flops,
        "epochs": len(metrics),
        "train_minutes": round(sum(m.seconds for m in metrics) / 60, 1),
        "images_per_s": round(statistics.median(rates)) if rates else None,
        "hardware": run.config.gpu,
        "citation": "",
        "path": str(run.path),
    }


@dataclass(frozen=True)
class DataSet:
    """The runs of one data set: only they compare with each other."""

    label: str
    tiny_imagenet: bool  # the reports' published figures compare with these runs
    runs: tuple[Run, ...]


TINY_VAL, TINY_SIZE = 10_000, 64  # Tiny ImageNet's validation images and their side
TINY_IMAGENET = "Tiny ImageNet (200 classes)"


def is_tiny_imagenet(wnids) -> bool:
    """Tiny ImageNet's 200 WordNet classes (in any layout), by their ids' form."""
    return len(wnids) == 200 and all(re.fullmatch(r"n\d{8}", w) for w in wnids)


def data_set_key(run: Run) -> tuple:
    """What a run's scores were measured on: its classes, its validation images' count and
    the images' side. Tiny ImageNet's classes alone do not make Tiny ImageNet: the same 200
    classes at 32 px, or a folder of a few of their images, score differently."""
    data = run.config.data
    return tuple(run.wnids), data.val or TINY_VAL, data.size or TINY_SIZE


def is_official(key: tuple) -> bool:
    """The data set the seeds' figures are of: Tiny ImageNet's validation set at 64 px."""
    wnids, val, size = key
    return is_tiny_imagenet(wnids) and val == TINY_VAL and size == TINY_SIZE


def data_label(run: Run) -> str:
    """The data set a run is scored on, as the leaderboard names it."""
    key = data_set_key(run)
    if is_official(key):
        return TINY_IMAGENET
    wnids, val, size = key
    name = Path(run.config.data.source).name or "other data"
    what = "Tiny ImageNet's 200 classes" if is_tiny_imagenet(wnids) else f"{len(wnids):,} classes"
    return f"{name} ({what}, {val:,} validation images, {size} px)"


def data_sets(runs: list[Run]) -> list[DataSet]:
    """The runs grouped by the data set their scores were measured on (`data_set_key`):
    Tiny ImageNet first, then the others by their number of runs; each named by its data
    folder, classes, validation images and image size (`data_label`)."""
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        groups.setdefault(data_set_key(run), []).append(run)
    out = [
        DataSet(data_label(members[0]), is_official(key), tuple(members))
        for key, members in groups.items()
    ]
    return sorted(out, key=lambda d: (not d.tiny_imagenet, -len(d.runs), d.label))


def rows(runs: list[Run]) -> list[dict]:
    """Our runs, best plain top-1 first."""
    return sorted((row(r) for r in runs), key=lambda r: -(r["top1"] or 0))


def seed_rows() -> list[dict]:
    """The five reports' published figures (`reference`) in the same columns, each named
    by its report's title and author (`literature`)."""
    out = []
    for ref in reference.REFERENCES:
        out.append(
            {
                "run": f"{ref.report.label}: {ref.model}",
                "model": ref.family,
                "source": ref.report.cite,
                "data": TINY_IMAGENET,
                "top1": ref.val_top1,
                "top5": ref.val_top5,
                "loss": None,
                "measured_on": ref.notes,
                "best_top1": None,
                "best_with": "",
                "params": None,
                "flops": None,
                "epochs": None,
                "train_minutes": None,
                "images_per_s": None,
                "hardware": None,  # the reports rarely say; the notes quote them where they do
                "citation": ref.citation,
                "path": "",
            }
        )
    return out


def curves(runs: list[Run]) -> list[dict]:
    """Long-format training curves: one row per run, epoch, split and metric."""
    out = []
    for run in runs:
        for m in run.metrics:
            for split, top1, loss in (
                ("train", m.train_top1, m.train_loss),
                ("val", m.val_top1, m.val_loss),
            ):
                out.append(
                    {"run": run.name, "epoch": m.epoch, "split": split, "top1": top1, "loss": loss}
                )
    return out


def ensemble_curves(runs: list[Run]) -> list[dict]:
    """Top-1 against ensemble size, from evaluations recorded with `--ensemble K`; the label
    names the test-time augmentation only when there was one."""
    out = []
    for run in runs:
        for ev in run.evals:
            for k, top1 in enumerate(ev.curve, 1):
                out.append(
                    {
                        "run": run.name,
                        "members": k,
                        "top1": top1,
                        "tta": ev.tta,
                        "label": run.name if ev.tta == "none" else f"{run.name}, {ev.tta} TTA",
                    }
                )
    return out


def broken_rows(broken) -> list[dict]:
    """The run folders that cannot be used (`folder.BrokenRun`), as the Models page lists
    them: the name (hidden characters escaped), the folder holding it, and why."""
    return [{"run": shown_name(b.name), "in": where(b.path), "why": b.reason} for b in broken]
