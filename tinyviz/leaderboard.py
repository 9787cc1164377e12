"""The Models page's numbers: one summary row per run, and the seeds' figures beside them.

Each figure carries what it was measured on. The headline top-1 is the plain single-model
score on the validation set (from `evals.json` when `python -m tinyviz evaluate` recorded it,
else the last epoch's validation score); the best score with test-time augmentation or a
snapshot ensemble is shown separately, with its conditions.
"""

from __future__ import annotations

import statistics

from . import reference
from .checkpoints import Run


def describe(ev: dict) -> str:
    """'val, 10,000 images, flip TTA, ensemble of 4' for one evaluation record."""
    parts = [ev.get("split", "val"), f"{ev.get('n', 0):,} images"]
    if ev.get("tta", "none") != "none":
        parts.append(f"{ev['tta']} TTA")
    parts.append("single model" if ev.get("ensemble", 1) == 1
                 else f"ensemble of {ev['ensemble']} snapshots")
    return ", ".join(parts)


def plain_score(run: Run) -> tuple[dict, str]:
    """The single-model, no-TTA validation score and where it comes from."""
    plain = [e for e in run.evals() if e.get("split") == "val" and e.get("tta") == "none"
             and e.get("ensemble") == 1]
    if plain:
        best = max(plain, key=lambda e: e["n"])
        return best, describe(best)
    last = run.metrics[-1] if run.metrics else {}
    score = {"top1": last.get("val_top1"), "top5": last.get("val_top5"),
             "loss": last.get("val_loss"), "n": run.config.get("data", {}).get("val")}
    return score, f"last epoch's validation score ({score['n'] or '?'} images)"


def best_boosted(run: Run) -> dict | None:
    """The best validation score with TTA or an ensemble, if any was recorded."""
    boosted = [e for e in run.evals() if e.get("split") == "val"
               and (e.get("tta") != "none" or e.get("ensemble", 1) > 1)]
    return max(boosted, key=lambda e: e["top1"]) if boosted else None


def row(run: Run) -> dict:
    score, measured = plain_score(run)
    boosted = best_boosted(run)
    metrics = run.metrics
    rates = [m["images_per_s"] for m in metrics if m.get("images_per_s")]
    env = run.config.get("env", {})
    return {
        "run": run.name, "model": run.model_name,
        "source": "ours", "top1": score.get("top1"), "top5": score.get("top5"),
        "loss": score.get("loss"), "measured_on": measured,
        "best_top1": boosted["top1"] if boosted else None,
        "best_with": describe(boosted) if boosted else "",
        "params": run.config.get("model", {}).get("params"),
        "flops": run.config.get("model", {}).get("flops"),
        "epochs": len(metrics),
        "train_minutes": round(sum(m.get("seconds", 0) for m in metrics) / 60, 1),
        "images_per_s": round(statistics.median(rates)) if rates else None,
        "hardware": env.get("gpu") or env.get("device", "?"),
        "path": str(run.path),
    }


def rows(runs: list[Run]) -> list[dict]:
    """Our runs, best plain top-1 first."""
    return sorted((row(r) for r in runs), key=lambda r: -(r["top1"] or 0))


def seed_rows() -> list[dict]:
    """The seeds' published figures in the same columns."""
    out = []
    for ref in reference.REFERENCES:
        out.append({"run": f"seed {ref.seed}: {ref.model}", "model": ref.family,
                    "source": f"seed {ref.seed}", "top1": ref.val_top1, "top5": ref.val_top5,
                    "loss": None, "measured_on": ref.notes, "best_top1": None, "best_with": "",
                    "params": None, "flops": None, "epochs": None, "train_minutes": None,
                    "images_per_s": None, "hardware": ref.source, "path": ""})
    return out


def curves(runs: list[Run]) -> list[dict]:
    """Long-format training curves: one row per run, epoch, split and metric."""
    out = []
    for run in runs:
        for m in run.metrics:
            for split, top1, loss in (("train", "train_top1", "train_loss"),
                                      ("val", "val_top1", "val_loss")):
                out.append({"run": run.name, "epoch": m["epoch"], "split": split,
                            "top1": m.get(top1), "loss": m.get(loss)})
    return out


def ensemble_curves(runs: list[Run]) -> list[dict]:
    """Top-1 against ensemble size, from evaluations recorded with `--ensemble K`."""
    out = []
    for run in runs:
        for ev in run.evals():
            for k, top1 in enumerate(ev.get("curve") or [], 1):
                out.append({"run": run.name, "members": k, "top1": top1,
                            "tta": ev.get("tta", "none"),
                            "label": f"{run.name} ({ev.get('tta', 'none')} TTA)"})
    return out
