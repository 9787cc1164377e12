"""Weights: safetensors only, read as untrusted input, and the models rebuilt from a run.

Loading a safetensors file can never execute code, unlike a pickle (PyTorch's own security
policy). The file is read only if it is a regular file of bounded size inside its run folder
(`tinyviz.io.read_bytes`); its tensors must fit the model by name, shape and kind (integer
weights where the model has floats would train to NaN and predict at chance), and floating
weights must be finite.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .. import io, models
from ..errors import CheckpointError
from .folder import MAX_WEIGHTS, Run, RunConfig, open_run


def save_weights(
    path: Path,
    tensors: dict[str, torch.Tensor],
    metadata: dict[str, str] | None = None,
    dtype: torch.dtype | None = None,
) -> None:
    """Save a flat dict of tensors as safetensors, optionally casting floats to `dtype`."""
    out = {}
    for k, t in tensors.items():
        t = t.detach().cpu()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        out[k] = t.contiguous()
    io.write_bytes(path, st_save(out, metadata=metadata))


def load_weights(
    path: Path, *, inside: Path | None = None, check_finite: bool = True
) -> dict[str, torch.Tensor]:
    """Read a safetensors file; never unpickles, refuses non-finite floating weights."""
    data = io.read_bytes(path, max_bytes=MAX_WEIGHTS, inside=inside)
    try:
        tensors = st_load(data)
    except (SafetensorError, ValueError, RuntimeError, OverflowError) as e:
        raise CheckpointError(f"{path} is not a valid safetensors file ({e})") from None
    if check_finite:
        for k, t in tensors.items():
            if t.is_floating_point() and not torch.isfinite(t).all():
                raise CheckpointError(f"{path} holds non-finite values in {k}")
    return tensors


def read_metadata(path: Path, *, inside: Path | None = None) -> dict[str, str]:
    """The `__metadata__` of a safetensors file, from its header alone (no tensor is read)."""
    meta = io.safetensors_header(path, max_bytes=MAX_WEIGHTS, inside=inside).get("__metadata__")
    if not isinstance(meta, dict | None):
        raise CheckpointError(f"{path} has a malformed header")
    return {str(k): str(v) for k, v in (meta or {}).items()}


def load_state(model: torch.nn.Module, tensors: dict[str, torch.Tensor], source) -> None:
    """`load_state_dict` with one-line errors for missing, unexpected or misfitting weights."""
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    if missing or unexpected:
        raise CheckpointError(
            f"{source} does not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    for k, t in tensors.items():
        if t.shape != own[k].shape:
            raise CheckpointError(
                f"{source} does not fit the model: {k} has shape "
                f"{tuple(t.shape)}, the model wants {tuple(own[k].shape)}"
            )
        if t.is_floating_point() != own[k].is_floating_point():
            raise CheckpointError(
                f"{source} does not fit the model: {k} is {t.dtype}, the model wants {own[k].dtype}"
            )
    model.load_state_dict(tensors)


def build_model(config: RunConfig, run_dir: Path | None = None) -> torch.nn.Module:
    """The untrained model a run's config describes (pretrained weights are not fetched).

    An imported model's network may live in its run folder (`run_dir`: ONNX, Keras)."""
    imported = config.model.imported
    if imported is not None and imported.route != "tinyviz":
        from .imported import rebuild

        return rebuild(config, run_dir)
    options = dict(config.model.options)
    if models.spec(config.model.name).pretrained:
        options["pretrained"] = False
    return models.create(config.model.name, num_classes=len(config.classes.wnids), **options)


def load_model(
    run: Run | Path,
    snapshot: str | None = None,
    device: str | torch.device = "cpu",
    epoch: int | None = None,
) -> torch.nn.Module:
    """Rebuild a run's model from the registry and load its weights (a snapshot's, an epoch
    view's, else its own), in eval mode."""
    run = run if isinstance(run, Run) else open_run(run)
    model = build_model(run.config, run.path)
    file = run.weights_file(snapshot, epoch)
    load_state(model, load_weights(file, inside=run.path), file)
    return model.to(device).eval()
