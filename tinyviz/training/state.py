"""What `--resume` needs, saved at the end of every epoch as ONE file, without pickling.

Raw weights, EMA weights and optimizer tensors are the tensors of `resume.safetensors`; the
optimizer's scalar settings and the counters are its JSON metadata. One file is one atomic
rename, so a kill at any moment leaves the previous epoch's state or this one's, never the
tensors of one epoch with the counters of another (older versions wrote two files, and are
still read). The learning rate is a function of the step and the data order a function of
the epoch, so neither needs saving.
"""

from __future__ import annotations

import json

import torch

from ..errors import CheckpointError
from ..runs.folder import RunFolder
from ..runs.resume import META_KEY, read_counters
from ..runs.weights import load_state as load_model_state
from ..runs.weights import load_weights, save_weights

__all__ = ["META_KEY", "load_state", "read_counters", "save_state"]


def save_state(
    folder: RunFolder, model, ema, optimizer: torch.optim.Optimizer, counters: dict
) -> None:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    if ema is not None:
        tensors.update({f"ema.{k}": v for k, v in ema.state_dict().items()})
    opt = optimizer.state_dict()
    scalars: dict[str, dict] = {}
    for pid, entry in opt["state"].items():
        for name, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"opt.{pid}.{name}"] = value
            else:
                scalars.setdefault(str(pid), {})[name] = value
    meta = {**counters, "param_groups": opt["param_groups"], "scalars": scalars}
    save_weights(folder.resume, tensors, {META_KEY: json.dumps(meta)})
    for legacy in folder.legacy_resume() or ():
        legacy.unlink(missing_ok=True)  # superseded by the one file


def load_state(folder: RunFolder, model, ema, optimizer: torch.optim.Optimizer) -> dict:
    meta = read_counters(folder)
    legacy = folder.legacy_resume() if not folder.resume.exists() else None
    file = legacy[0] if legacy else folder.resume
    tensors = load_weights(file, inside=folder.path, check_finite=False)

    def part(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

    load_model_state(model, part("model."), file)
    if ema is not None:
        ema.load_state_dict(part("ema."))
    state: dict[int, dict] = {}
    for key, value in part("opt.").items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    for pid, values in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(values)
    try:
        optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"the optimizer state in {file} does not fit: {e}") from None
    return meta
