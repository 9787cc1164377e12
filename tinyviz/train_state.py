"""What `--resume` needs, saved at the end of every epoch without pickling anything.

Raw weights, EMA weights and optimizer tensors go into `state.safetensors`; the optimizer's
scalar settings and the counters go into `state.json`. The learning rate is a function of the
step and the data order a function of the epoch, so neither needs saving.
"""

from __future__ import annotations

from pathlib import Path

import torch

from . import checkpoints

STATE = "state.safetensors"
STATE_JSON = "state.json"


def save_state(out: Path, model, ema, optimizer: torch.optim.Optimizer, counters: dict) -> None:
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
    # the tensors first: state.json is the marker that a complete state exists
    checkpoints.save_weights(out / STATE, tensors)
    checkpoints.write_json(out / STATE_JSON, {**counters, "param_groups": opt["param_groups"],
                                              "scalars": scalars})


def load_state(out: Path, model, ema, optimizer: torch.optim.Optimizer) -> dict:
    meta = checkpoints.read_json(out / STATE_JSON)
    tensors = checkpoints.load_weights(out / STATE, check_finite=False)

    def part(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

    checkpoints.load_state(model, part("model."), out / STATE)
    if ema is not None:
        ema.load_state_dict(part("ema."))
    state: dict[int, dict] = {}
    for key, value in part("opt.").items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    for pid, values in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    return meta
