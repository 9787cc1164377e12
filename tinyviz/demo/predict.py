"""Classify uploaded images: top-k classes of one model or of an ensemble.

One 64 x 64 image through a ResNet-18 is a single forward pass, cheap even on a CPU, so
nothing here is cached. Models are shared between dashboard sessions, and an
explainer in another session may have hooks on the same model (guided backprop's hooks even
fail under inference mode), so every forward pass holds `model_lock(model)`.

Class names come from the run, never from the data set the sidebar has open: a run trained
on another class list would otherwise be labelled wrongly without anyone noticing.
`run_classes` returns a run's classes and checks that several runs agree.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.batches import to_model_input
from ..errors import PredictError
from ..explain import familiar
from ..models.base import TinyvizModel
from ..runs.folder import Run, open_run
from ..runs.weights import load_model
from ..runtime.locks import model_lock


@dataclass(frozen=True)
class Prediction:
    """The top-k classes of one image, most probable first."""

    classes: tuple[int, ...]
    probs: tuple[float, ...]
    names: tuple[str, ...]
    wnids: tuple[str, ...]
    seconds: float
    model_label: str

    @property
    def top(self) -> str:
        """The most probable class's short name."""
        return self.names[0]


SURE_AT = 0.30  # below this top-1 probability the answer is shown as "not sure"


@dataclass(frozen=True)
class Verdict:
    """How sure an answer is, for a visitor: a confident answer is stated, a weak one is not.

    With 200 classes a top-1 of 7% is still the model's best guess, but shown as boldly as
    a 90% one it reads as a claim. Below `SURE_AT` the headline says "not sure" and names
    the two best guesses instead.
    """

    sure: bool
    name: str
    prob: float
    runner_up: str | None
    runner_up_prob: float | None

    @property
    def headline(self) -> str:
        return f"{self.name} · {self.prob:.0%}" if self.sure else "Not sure"

    @property
    def detail(self) -> str:
        """The line under the headline: the runner-up, or the two guesses when not sure."""
        second = f"{self.runner_up} {self.runner_up_prob:.0%}" if self.runner_up is not None else ""
        if self.sure:
            return f"next: {second}" if second else ""
        first = f"{self.name} {self.prob:.0%}"
        return f"maybe {first}" + (f" or {second}" if second else "")


def verdict(pred: Prediction, sure_at: float | None = None) -> Verdict:
    """The headline of `pred`: sure when its top-1 probability is at least `sure_at`
    (default `SURE_AT`)."""
    sure_at = SURE_AT if sure_at is None else sure_at
    if not pred.probs:
        raise PredictError("a prediction without classes has no verdict")
    two = len(pred.probs) > 1
    return Verdict(
        sure=pred.probs[0] >= sure_at,
        name=pred.names[0],
        prob=pred.probs[0],
        runner_up=pred.names[1] if two else None,
        runner_up_prob=pred.probs[1] if two else None,
    )


def predict_ensemble(
    models: Sequence[nn.Module],
    rgb64: np.ndarray,
    class_names: Sequence[str],
    wnids: Sequence[str],
    k: int = 5,
    *,
    label: str = "",
) -> Prediction:
    """Top-`k` of the models' averaged softmax probabilities (seed 004's Eq. 2)."""
    if not models:
        raise PredictError("an ensemble needs at least one model")
    _check_names(class_names, wnids)
    start = time.perf_counter()
    x = to_model_input(rgb64)
    probs = torch.stack([_probs(m, x, len(wnids)) for m in models]).mean(0)
    seconds = time.perf_counter() - start
    return _top(probs, class_names, wnids, k, seconds, label or _default_label(models))


@dataclass(frozen=True)
class Look:
    """One forward pass of one image: its (D,) penultimate features, its (C,) logits, and
    the seconds the pass took."""

    features: np.ndarray
    logits: np.ndarray
    seconds: float


def look(model: nn.Module, rgb64: np.ndarray) -> Look:
    """`features` of one image, timed: what both its top-5 (`from_look`, for a model where
    `one_pass` holds) and its familiarity (`judge`) are read from."""
    start = time.perf_counter()
    f, logits = features(model, rgb64)
    return Look(f, logits, time.perf_counter() - start)


def one_pass(model: nn.Module) -> bool:
    """Whether the model's output is, by construction, its head on its features
    (`TinyvizModel.forward`, not overridden): then one pass (`look`) gives the top-5 and
    the features for the familiarity check, and Classify's answer to a photo makes one
    forward pass per model less (33-45 ms of a server thread each on this CPU). An
    imported model's wrapper finds its features with a hook and is not assumed to."""
    return isinstance(model, TinyvizModel) and type(model).forward is TinyvizModel.forward


def from_look(
    seen: Look, class_names: Sequence[str], wnids: Sequence[str], k: int = 5, *, label: str
) -> Prediction:
    """The top-`k` of one model read from its `look` at the image (see `one_pass`)."""
    _check_names(class_names, wnids)
    logits = torch.from_numpy(np.asarray(seen.logits, np.float32))
    _check_classes(logits, len(wnids))
    return _top(logits.softmax(0), class_names, wnids, k, seen.seconds, label)


def judge(seen: Look, checker: familiar.Checker | None) -> familiar.Familiarity | None:
    """`familiarity` read from a `look` already taken (None without a calibration)."""
    return None if checker is None else checker.judge(seen.features, seen.logits)


def load_snapshot_ensemble(run_dir: Path, k: int, device: str = "cpu") -> list[nn.Module]:
    """The run's `k` best snapshots (best first), each loaded as an eval-mode model."""
    run = open_run(run_dir)
    snaps = run.snapshots[:k]
    if k < 1 or not snaps:
        raise PredictError(
            f"{run.name} kept no snapshots" if not snaps else "an ensemble needs k >= 1"
        )
    return [load_model(run, snapshot=s.file, device=device) for s in snaps]


def run_classes(runs: Sequence[Run]) -> tuple[list[str], list[str]]:
    """`(class_names, wnids)` shared by `runs`; raises if they were trained on different lists."""
    if not runs:
        raise PredictError("no runs chosen")
    first = runs[0]
    for run in runs[1:]:
        if run.wnids != first.wnids:
            raise PredictError(
                f"{run.name} and {first.name} were trained on different "
                f"classes ({len(run.wnids)} vs {len(first.wnids)}); they "
                "cannot be compared or averaged"
            )
    return list(first.class_names), list(first.wnids)


def features(model: nn.Module, rgb64: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The model's (D,) penultimate features of one image and its (C,) logits, in one
    forward pass under its lock."""
    device = next(model.parameters()).device
    with model_lock(model), torch.inference_mode():
        if model.training:
            model.eval()
        f = model.forward_features(to_model_input(rgb64).to(device))
        logits = model.forward_head(f)
    return f[0].float().cpu().numpy(), logits[0].float().cpu().numpy()


def familiarity(
    model: nn.Module, rgb64: np.ndarray, checker: familiar.Checker | None
) -> familiar.Familiarity | None:
    """Whether the image looks like anything the run was trained on (`explain.familiar`):
    None while the run has no calibration (no stored analysis yet), or for a model whose
    features cannot be had (no `forward_features`)."""
    return judge(look(model, rgb64), checker) if judges(model, checker) else None


def judges(model: nn.Module, checker: familiar.Checker | None) -> bool:
    """Whether `familiarity` can say anything: a calibration, and features to be had."""
    return checker is not None and hasattr(model, "forward_features")


# ---------------------------------------------------------------------- helpers


def _probs(model: nn.Module, x: torch.Tensor, classes: int) -> torch.Tensor:
    """Softmax of one model for one image, (C,) float32 on the CPU; checks the class count."""
    device = next(model.parameters()).device
    with model_lock(model), torch.inference_mode():
        if model.training:
            model.eval()
        logits = model(x.to(device))[0].float().cpu()
    _check_classes(logits, classes)
    return logits.softmax(0)


def _check_names(class_names: Sequence[str], wnids: Sequence[str]) -> None:
    if len(class_names) != len(wnids):
        raise PredictError(f"{len(class_names)} class names but {len(wnids)} wnids")


def _check_classes(logits: torch.Tensor, classes: int) -> None:
    if logits.numel() != classes:
        raise PredictError(
            f"the model predicts {logits.numel()} classes but {classes} class "
            "names were given: use the run's own classes (run_classes)"
        )


def _top(probs: torch.Tensor, class_names, wnids, k: int, seconds: float, label: str):
    top = probs.topk(min(k, len(wnids)))
    idx = tuple(int(i) for i in top.indices)
    return Prediction(
        classes=idx,
        probs=tuple(float(p) for p in top.values),
        names=tuple(class_names[i] for i in idx),
        wnids=tuple(wnids[i] for i in idx),
        seconds=seconds,
        model_label=label,
    )


def _default_label(models: Sequence[nn.Module]) -> str:
    name = type(models[0]).__name__
    return name if len(models) == 1 else f"ensemble of {len(models)} × {name}"
