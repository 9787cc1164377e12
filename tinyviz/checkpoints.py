"""Run folders and weights: the one place that reads and writes them.

A run folder holds `config.json` (model, options, training config, classes, versions),
`metrics.jsonl` (one line per epoch), `model.safetensors` (the weights to use),
`snapshots/` (the K best epochs) and, while training, `state.safetensors` + `state.json`
(what `--resume` needs). Weights are safetensors only: loading one can never execute code,
unlike a pickle (PyTorch's own security policy). Every write goes to a temporary file in
the same folder and is then renamed, so a killed process never leaves a half-written file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from . import models

CONFIG = "config.json"
METRICS = "metrics.jsonl"
WEIGHTS = "model.safetensors"
SNAPSHOTS = "snapshots"
EVALS = "evals.json"


class CheckpointError(Exception):
    """A run folder or weights file that cannot be used, described in one line."""


# ---------------------------------------------------------------- atomic writes


def write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    write_bytes(path, json.dumps(obj, indent=1, sort_keys=False).encode())


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing") from None
    except (ValueError, OSError) as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from None


def append_jsonl(path: Path, obj: dict) -> None:
    """Append one line; rewriting the whole file keeps the append atomic too."""
    path = Path(path)
    old = path.read_bytes() if path.exists() else b""
    write_bytes(path, old + (json.dumps(obj) + "\n").encode())


def read_jsonl(path: Path) -> list[dict]:
    if not Path(path).exists():
        return []
    rows = []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue  # a torn last line from an older writer: skip, keep the rest
    return rows


# --------------------------------------------------------------------- weights


def save_weights(path: Path, tensors: dict[str, torch.Tensor],
                 metadata: dict[str, str] | None = None, dtype: torch.dtype | None = None) -> None:
    """Save a flat dict of tensors as safetensors, optionally casting floats to `dtype`."""
    out = {}
    for k, t in tensors.items():
        t = t.detach().cpu()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        out[k] = t.contiguous()
    write_bytes(path, st_save(out, metadata=metadata))


def load_weights(path: Path, check_finite: bool = True) -> dict[str, torch.Tensor]:
    """Read a safetensors file; never unpickles, refuses non-finite weights."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        tensors = st_load(data)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path} is not a valid safetensors file ({e})") from None
    if check_finite:
        for k, t in tensors.items():
            if t.is_floating_point() and not torch.isfinite(t).all():
                raise CheckpointError(f"{path} holds non-finite values in {k}")
    return tensors


# ------------------------------------------------------------------------ runs


@dataclass(frozen=True)
class Run:
    """A run folder's description: what the dashboard lists and the loaders rebuild from."""

    path: Path
    config: dict
    metrics: tuple[dict, ...]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def model_name(self) -> str:
        return self.config["model"]["name"]

    @property
    def wnids(self) -> list[str]:
        return self.config["classes"]["wnids"]

    @property
    def class_names(self) -> list[str]:
        return self.config["classes"]["names"]

    def snapshots(self) -> list[dict]:
        """Snapshots best first: `[{"epoch", "top1", "file"}]`."""
        index = self.path / SNAPSHOTS / "index.json"
        return read_json(index) if index.exists() else []

    def evals(self) -> list[dict]:
        p = self.path / EVALS
        return read_json(p) if p.exists() else []

    def mtime(self) -> float:
        w = self.path / WEIGHTS
        return w.stat().st_mtime if w.exists() else 0.0


def open_run(path: Path) -> Run:
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"run folder does not exist: {path}")
    config = read_json(path / CONFIG)
    for key in ("model", "classes"):
        if key not in config:
            raise CheckpointError(f"{path / CONFIG} lacks '{key}'")
    return Run(path, config, tuple(read_jsonl(path / METRICS)))


def list_runs(roots: Iterable[Path]) -> list[Run]:
    """Every run folder with weights directly under the given folders, newest first."""
    runs = []
    for root in roots:
        root = Path(root)
        if (root / CONFIG).exists():
            candidates = [root]
        elif root.is_dir():
            candidates = sorted(p for p in root.iterdir() if (p / CONFIG).exists())
        else:
            candidates = []
        for p in candidates:
            if (p / WEIGHTS).exists():
                try:
                    runs.append(open_run(p))
                except CheckpointError:
                    continue
    return sorted(runs, key=lambda r: r.mtime(), reverse=True)


def build_model(config: dict) -> torch.nn.Module:
    """The untrained model a run's config describes (pretrained weights are not fetched)."""
    name = config["model"]["name"]
    if name not in models.names():
        raise CheckpointError(f"unknown model {name!r} (known: {', '.join(models.names())})")
    options = dict(config["model"].get("options") or {})
    if models.spec(name).pretrained:
        options["pretrained"] = False
    return models.create(name, num_classes=len(config["classes"]["wnids"]), **options)


def load_model(path: Path, snapshot: str | None = None,
               device: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild a run's model from the registry and load its weights, in eval mode."""
    run = open_run(path)
    model = build_model(run.config)
    file = run.path / (f"{SNAPSHOTS}/{snapshot}" if snapshot else WEIGHTS)
    load_state(model, load_weights(file), file)
    return model.to(device).eval()


def load_state(model: torch.nn.Module, tensors: dict[str, torch.Tensor], source) -> None:
    """`load_state_dict` with one-line errors for missing, unexpected or misshapen weights."""
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    if missing or unexpected:
        raise CheckpointError(f"{source} does not fit the model: missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]}")
    for k, t in tensors.items():
        if t.shape != own[k].shape:
            raise CheckpointError(f"{source} does not fit the model: {k} has shape "
                                  f"{tuple(t.shape)}, the model wants {tuple(own[k].shape)}")
    model.load_state_dict(tensors)
