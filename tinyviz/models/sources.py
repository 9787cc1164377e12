"""Networks from elsewhere, by route: torchvision, timm, the user's own code, ONNX, Keras.

`parse_arch` reads `--arch` (`torchvision:NAME`, `timm:NAME`, `path/to/file.py:Name`,
`package.module:Name`, or a tinyviz model name); `build` makes the untrained network with
a head of `num_classes` outputs (no weights are downloaded); `head_rows` reads how many
outputs a state dict's head has, so the head can be sized from the file; and
`default_preprocessing` is what the route's models expect unless the user says otherwise
(timm: `timm.data.resolve_data_config`).

User code runs: importing the file (or module) executes it, and so does every later load
of the run. `load_code` therefore only accepts an `nn.Module` subclass or a function
defined in the named module, and the run records the file's digest, so a changed file is
refused rather than run silently.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from tinyviz.errors import CheckpointError, ConfigError
from tinyviz.models.external import NORMALIZATIONS, Preprocessing

ROUTES = ("tinyviz", "torchvision", "timm", "code", "onnx", "keras")
FILE_ROUTES = {".onnx": "onnx", ".keras": "keras", ".h5": "keras", ".hdf5": "keras"}
MODULE_SPEC = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


@dataclass(frozen=True)
class Arch:
    """Where the architecture comes from: `route` and its `name` (as the user gave it)."""

    route: str
    name: str = ""

    @property
    def label(self) -> str:
        """How the Models page names it: 'torchvision:resnet18', 'ONNX graph'."""
        if self.route == "onnx":
            return "ONNX graph"
        if self.route == "keras":
            return "Keras model"
        if self.route == "code":
            return f"code:{Path(self.name.rpartition(':')[0]).name}:{self.name.rpartition(':')[2]}"
        return self.name if self.route == "tinyviz" else f"{self.route}:{self.name}"


def parse_arch(arch: str | None, weights: Path) -> Arch:
    """The route of `--arch` for a weights file; ONNX and Keras files need none."""
    suffix = weights.suffix.lower()
    if suffix in FILE_ROUTES:
        if arch:
            raise ConfigError(f"a {suffix} file holds its architecture: leave out --arch")
        return Arch(FILE_ROUTES[suffix])
    if not arch:
        raise ConfigError(
            "--arch is needed for a state dict: a tinyviz model name, torchvision:NAME, "
            "timm:NAME, path/to/file.py:Name or package.module:Name"
        )
    head, sep, rest = arch.partition(":")
    if sep and head in ("torchvision", "timm"):
        if not rest:
            raise ConfigError(f"--arch {arch}: name the {head} model, e.g. {head}:resnet18")
        return Arch(head, rest)
    if sep and (head.endswith(".py") or MODULE_SPEC.fullmatch(arch)):
        return Arch("code", arch)
    from tinyviz.models import registry

    registry.spec(arch)  # an unknown name lists the known ones
    return Arch("tinyviz", arch)


# -------------------------------------------------------------------------- building


def build(arch: Arch, num_classes: int, code_digest: str = "") -> nn.Module:
    """The untrained network of a torchvision, timm or code route, `num_classes` outputs."""
    if arch.route == "torchvision":
        return _torchvision(arch.name, num_classes)
    if arch.route == "timm":
        return _timm(arch.name, num_classes)
    if arch.route == "code":
        return load_code(arch.name, num_classes, code_digest)
    raise ValueError(f"{arch.route} networks come from their file")


def _torchvision(name: str, num_classes: int | None) -> nn.Module:
    import torchvision

    known = torchvision.models.list_models(module=torchvision.models)
    if name not in known:
        raise ConfigError(
            f"torchvision has no classification model {name!r}; e.g. {', '.join(known[:6])}"
        )
    kw = {} if num_classes is None else {"num_classes": num_classes}
    if name in ("inception_v3", "googlenet"):
        kw["aux_logits"] = False  # the auxiliary heads only train; a state dict may lack them
        kw["init_weights"] = False
    return torchvision.models.get_model(name, weights=None, **kw)


def _timm(name: str, num_classes: int | None) -> nn.Module:
    import timm

    if not timm.list_models(name):
        raise ConfigError(f"timm has no model {name!r} (timm.list_models('*{name}*') lists some)")
    kw = {} if num_classes is None else {"num_classes": num_classes}
    return timm.create_model(name, pretrained=False, **kw)


def head_rows(arch: Arch, state: dict[str, torch.Tensor]) -> tuple[str, int] | None:
    """(the head's weight key, its outputs) in a state dict, from the default network's
    last linear layer (built on the meta device: no memory, no weights), or None."""
    if arch.route not in ("torchvision", "timm"):
        return None
    with torch.device("meta"):
        net = (
            _torchvision(arch.name, None) if arch.route == "torchvision" else _timm(arch.name, None)
        )
    linears = [n for n, m in net.named_modules() if isinstance(m, nn.Linear)]
    key = f"{linears[-1]}.weight" if linears else ""
    if key in state and state[key].dim() == 2:
        return key, int(state[key].shape[0])
    return None


# ------------------------------------------------------------------------ user code


def load_code(spec: str, num_classes: int, digest: str = "") -> nn.Module:
    """`path/to/file.py:Name` or `package.module:Name`, called (with `num_classes` when it
    takes it) to make the network. Its code runs. `digest`: the file's recorded SHA-256."""
    where, _, attr = spec.rpartition(":")
    module = _import(where, spec)
    if digest and code_digest(spec) != digest:
        raise CheckpointError(
            f"{code_file(spec)} changed since the model was imported: import it again"
        )
    obj = getattr(module, attr, None)
    if obj is None:
        raise CheckpointError(f"{where} has no {attr!r}")
    is_class = inspect.isclass(obj) and issubclass(obj, nn.Module)
    is_factory = inspect.isfunction(obj) and obj.__module__ == module.__name__
    if not (is_class or is_factory):
        raise CheckpointError(f"{spec}: not an nn.Module class or a function of {where}")
    takes = inspect.signature(obj).parameters
    try:
        net = obj(num_classes=num_classes) if "num_classes" in takes else obj()
    except Exception as e:  # the user's code: any error is theirs, reported in one line
        raise CheckpointError(f"{spec} failed: {type(e).__name__}: {e}") from None
    if not isinstance(net, nn.Module):
        raise CheckpointError(f"{spec} returned a {type(net).__name__}, not an nn.Module")
    return net


def code_file(spec: str) -> Path | None:
    """The source file of a code spec (None for a module without one)."""
    where = spec.rpartition(":")[0]
    if where.endswith(".py"):
        return Path(where)
    found = importlib.util.find_spec(where) if where else None
    return Path(found.origin) if found and found.origin else None


def code_digest(spec: str) -> str:
    file = code_file(spec)
    return hashlib.sha256(file.read_bytes()).hexdigest() if file and file.is_file() else ""


def _import(where: str, spec: str):
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise CheckpointError(
                f"the model's code {path} is gone: put it back, or import the model again"
            )
        name = "tinyviz_user_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
        if name in sys.modules:
            return sys.modules[name]
        loader_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(loader_spec)
        try:
            loader_spec.loader.exec_module(module)
        except Exception as e:
            raise CheckpointError(f"{path} failed to import: {type(e).__name__}: {e}") from None
        sys.modules[name] = module
        return module
    try:
        return importlib.import_module(where)
    except ImportError as e:
        raise CheckpointError(f"{spec}: cannot import {where} ({e})") from None


# -------------------------------------------------------------------- preprocessing


def default_preprocessing(arch: Arch, net: nn.Module | None = None) -> Preprocessing:
    """What the route's models expect: ImageNet statistics for torchvision and user code,
    timm's own data config for timm, [0, 1] pixels for ONNX and Keras files, except 0-255
    pixels for a Keras model whose first layer rescales them (`keras_net.takes_0_255`)."""
    if arch.route == "timm" and net is not None:
        from timm.data import resolve_data_config

        cfg = resolve_data_config({}, model=net)
        size = int(cfg["input_size"][-1])
        mode = cfg.get("interpolation", "bilinear")
        return Preprocessing(
            size=size,
            interpolation=mode if mode in ("bilinear", "bicubic", "nearest") else "bilinear",
            mean=tuple(float(v) for v in cfg["mean"]),
            std=tuple(float(v) for v in cfg["std"]),
        )
    if arch.route in ("torchvision", "code"):
        mean, std = NORMALIZATIONS["imagenet"]
        return Preprocessing(mean=mean, std=std)
    if arch.route == "keras" and net is not None:
        from tinyviz.models import keras_net

        if keras_net.takes_0_255(net):
            mean, std = NORMALIZATIONS["255"]
            return Preprocessing(mean=mean, std=std)
    return Preprocessing()
