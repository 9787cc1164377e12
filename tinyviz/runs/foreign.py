"""State dicts from files written by other code, read without running any of it.

`.safetensors` files cannot hold code. `.pt`, `.pth`, `.pth.tar`, `.ckpt` and `.bin` files
are pickles, and a pickle is a program: they are read with `torch.load(weights_only=True)`,
whose unpickler only builds tensors and plain containers and refuses everything else
(a whole pickled model, a `__reduce__` that would run a command) before it runs. That
refusal is turned into one line that says how to save a state dict instead.

The usual containers are unwrapped (`state_dict`, `model`, `model_state_dict`, timm's
`state_dict_ema`, Lightning's `state_dict` whose keys start with the attribute that held
the network), and the prefixes of DataParallel (`module.`), Lightning (`model.`, `net.`)
and `torch.compile` (`_orig_mod.`) are taken off where the model's own names say so
(`fit_keys`).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from pathlib import Path

import torch

from .. import io
from ..errors import CheckpointError
from .folder import MAX_WEIGHTS
from .weights import load_weights

TORCH_SUFFIXES = (".pt", ".pth", ".pth.tar", ".ckpt", ".bin", ".tar")
CONTAINERS = ("state_dict", "model_state_dict", "model", "state_dict_ema", "module", "net")
PREFIXES = ("module.", "model.", "net.", "_orig_mod.", "model.module.", "module.model.")
SAVE_HINT = (
    "save the weights instead: torch.save(model.state_dict(), 'weights.pt'), or "
    "safetensors.torch.save_file(model.state_dict(), 'weights.safetensors')"
)


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, by name; `CheckpointError` (one line) if there are none."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith(".safetensors"):
        return load_weights(path)
    if not name.endswith(TORCH_SUFFIXES):
        raise CheckpointError(
            f"{path.name}: not a weights file tinyviz reads (.safetensors, .pt, .pth, "
            ".pth.tar, .ckpt, .bin, .onnx, .keras, .h5)"
        )
    return unwrap(_torch_load(path), path)


def _torch_load(path: Path):
    data = io.read_bytes(path, max_bytes=MAX_WEIGHTS)
    import io as pyio

    try:
        return torch.load(pyio.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        what = "a whole pickled model" if _names_a_module(str(e)) else "pickled Python objects"
        raise CheckpointError(
            f"{path.name} holds {what}, not only tensors: tinyviz does not unpickle code; "
            f"{SAVE_HINT}"
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError, KeyError) as e:
        raise CheckpointError(f"{path.name} is not a PyTorch weights file ({_line(e)})") from None


def _names_a_module(message: str) -> bool:
    return any(w in message for w in ("torch.nn", "torchvision.models", "timm.models", "Module"))


def unwrap(obj, source: object) -> dict[str, torch.Tensor]:
    """The flat {name: tensor} inside what `torch.load` returned."""
    for _ in range(3):  # a container inside a container (Lightning: {'state_dict': ...})
        if not isinstance(obj, dict):
            break
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        inner = next((obj[k] for k in CONTAINERS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(f"{source} holds no state dict (a mapping of names to tensors)")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{source} holds no tensors")
    for k, t in tensors.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise CheckpointError(f"{source} holds non-finite values in {k}")
    return tensors


def fit_keys(tensors: dict[str, torch.Tensor], wanted: Iterable[str]) -> dict[str, torch.Tensor]:
    """The tensors with the wrapper prefix taken off that makes most names match `wanted`
    (unchanged when none helps); a mismatch left is `weights.load_state`'s to report."""
    wanted = set(wanted)
    best, best_hits = tensors, len(wanted & set(tensors))
    for prefix in PREFIXES:
        if not any(k.startswith(prefix) for k in tensors):
            continue
        stripped = {k.removeprefix(prefix): v for k, v in tensors.items()}
        hits = len(wanted & set(stripped))
        if hits > best_hits:
            best, best_hits = stripped, hits
    extra = {k for k in best if k not in wanted}
    if best_hits == len(wanted) and extra and all(_bookkeeping(k) for k in extra):
        best = {k: v for k, v in best.items() if k in wanted}  # e.g. a loss's class weights
    return best


def _bookkeeping(key: str) -> bool:
    """Tensors a training wrapper keeps beside the network (Lightning metrics, losses)."""
    return key.split(".")[0] in ("criterion", "loss", "loss_fn", "train_acc", "val_acc", "metrics")


def _line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:160] if text else type(e).__name__
