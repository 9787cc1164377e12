"""`tinyviz import`: a run folder from a model trained elsewhere.

The result is an ordinary run folder, so every page, `evaluate` and `analyse` work on it:
`model.safetensors` (the weights, whatever file they came in), `config.json` (with an
`ImportInfo`: the route, the preprocessing, the head and layers, the class order) and, for
ONNX and Keras models, the graph they are rebuilt from (`model.onnx`, `model.keras`). The
folder is written under a temporary name and renamed into place when complete, so a failed
import leaves nothing, and it never replaces a folder that holds anything.

Class order: output i of the imported model is the i-th of the data set's class folders
sorted by name (what Keras' `flow_from_directory` and torchvision's `ImageFolder` use), or
the i-th line of `--classes`; a tinyviz model keeps the data set's own order. The run's
classes are the data set's, in its order: the head's rows are reordered to match.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .. import io, models
from ..config import TrainConfig
from ..errors import CheckpointError, ConfigError
from ..models import keras_net, onnx_net, sources
from ..models.external import (
    ExternalModel,
    Preprocessing,
    find_layers,
    output_check,
    parse_normalize,
)
from ..runtime.device import environment
from .folder import (
    MAX_WEIGHTS,
    ClassList,
    DataInfo,
    ImportInfo,
    ModelInfo,
    RunConfig,
    RunFolder,
    write_config,
)
from .foreign import fit_keys, read_state
from .weights import load_state, save_weights

CHANCE_FACTOR = 2.0  # a top-1 under twice chance is "near chance"


@dataclass(frozen=True)
class ImportRequest:
    """What `tinyviz import` was asked (each None: the route's default)."""

    weights: Path
    out: Path
    arch: str | None = None
    size: int | None = None
    normalize: str | None = None
    channels: str | None = None  # "rgb" or "bgr"
    classes: Path | None = None


def import_model(request: ImportRequest, data) -> Path:
    """Make the run folder `request.out` from the imported model; returns its path."""
    weights, out = Path(request.weights), Path(request.out)
    if not weights.is_file():
        raise CheckpointError(f"{weights}: no such file")
    _check_free(out)
    arch = sources.parse_arch(request.arch, weights)
    if arch.route == "tinyviz" and (request.size or request.normalize or request.channels):
        raise ConfigError(
            f"{arch.name} is a tinyviz model: it does its own resizing and normalisation, "
            "so --size, --normalize and --channels do not apply"
        )
    order, how = class_order(request.classes, data, keep=arch.route == "tinyviz")
    classes = len(data.classes.wnids)
    if arch.route == "tinyviz":
        model, info = _tinyviz_model(arch, weights, classes)
    else:
        model, info = _external_model(arch, request, weights, data)
    outputs = _outputs(model, _side(data))
    if outputs != classes:
        raise CheckpointError(
            f"{weights.name}: the model has {outputs} outputs but the data set has {classes} "
            "classes: import it with the data set it was trained on"
        )
    info = _reorder(model, info, order, how)
    _write(out, model, info, arch, weights, data)
    return out


def _check_free(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CheckpointError(f"--out {out} already exists and is not empty: choose a new folder")


def _side(data) -> int:
    images = data.val.images if len(data.val.images) else data.train.images
    return int(images.shape[1]) if len(images) else 64


# ---------------------------------------------------------------------- class order


def class_order(classes_file: Path | None, data, keep: bool = False) -> tuple[list[int], str]:
    """`order[j]`: the model's output for the data set's class j; and how, in words."""
    wnids = list(data.classes.wnids)
    if classes_file is None:
        if keep:
            return list(range(len(wnids))), "the data set"
        ranked = sorted(wnids)
        return [ranked.index(w) for w in wnids], "class folders sorted by name"
    text = io.read_bytes(Path(classes_file), max_bytes=io.MAX_JSON).decode("utf-8", "replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    by_name = {}
    for k, name in enumerate(data.classes.names):
        by_name.setdefault(name, []).append(k)
    index = []
    for line in lines:
        if line in wnids:
            index.append(wnids.index(line))
        elif len(by_name.get(line, ())) == 1:
            index.append(by_name[line][0])
        else:
            raise ConfigError(
                f"--classes {Path(classes_file).name}: {line!r} is no class of the data set"
            )
    if len(index) != len(wnids) or len(set(index)) != len(index):
        raise ConfigError(
            f"--classes lists {len(index)} classes ({len(set(index))} different); the data "
            f"set has {len(wnids)}: give each of them once, in the model's output order"
        )
    order = [0] * len(wnids)
    for output, k in enumerate(index):
        order[k] = output
    return order, f"--classes {Path(classes_file).name}"


def _reorder(model: nn.Module, info: ImportInfo, order: list[int], how: str) -> ImportInfo:
    """Put the outputs in the data set's order: by the head's rows where there is one."""
    import dataclasses

    if order == list(range(len(order))):
        return dataclasses.replace(info, class_order=how)
    if isinstance(model, ExternalModel):
        if model.reorder_classes(order):
            return dataclasses.replace(info, class_order=how)
        model.register_buffer("order", torch.tensor(order, dtype=torch.long), persistent=False)
        return dataclasses.replace(info, output_order=tuple(order), class_order=how)
    head = _zoo_head(model)
    with torch.no_grad():
        index = torch.tensor(order, dtype=torch.long)
        head.weight.copy_(head.weight[index])
        if head.bias is not None:
            head.bias.copy_(head.bias[index])
    return dataclasses.replace(info, class_order=how)


def _zoo_head(model: nn.Module) -> nn.Linear:
    modules = dict(model.named_modules())
    heads = [
        modules[h]
        for h in getattr(model, "head_modules", ())
        if isinstance(modules.get(h), nn.Linear)
    ]
    if not heads:
        raise ConfigError("this tinyviz model has no linear head to reorder: leave out --classes")
    return heads[-1]


# ---------------------------------------------------------------------- the models


def _tinyviz_model(arch, weights: Path, classes: int):
    spec = models.spec(arch.name)
    model = models.create(
        arch.name, num_classes=classes, **({"pretrained": False} if spec.pretrained else {})
    )
    state = fit_keys(read_state(weights), model.state_dict())
    load_state(model, state, weights.name)
    info = ImportInfo(route="tinyviz", file=weights.name, sha256=_digest(weights), arch=arch.name)
    return model.eval(), info


def _external_model(arch, request: ImportRequest, weights: Path, data):
    classes, side = len(data.classes.wnids), _side(data)
    graph = b""
    layout = "nchw"
    fixed = 0
    if arch.route == "onnx":
        graph = io.read_bytes(weights, max_bytes=MAX_WEIGHTS)
        net = onnx_net.load(graph, weights.name)
        fixed, layout = onnx_net.input_shape(graph)
    elif arch.route == "keras":
        net = keras_net.load(weights, weights.name)
        fixed, layout = keras_net.input_size(net), "nhwc"
    else:
        state = read_state(weights)
        head = sources.head_rows(arch, state)
        if head and head[1] != classes:
            raise CheckpointError(
                f"{weights.name}: its head ({head[0]}) has {head[1]} outputs but the data set "
                f"has {classes} classes: import it with the data set it was trained on"
            )
        net = sources.build(arch, classes)
        state = fit_keys(state, net.state_dict())
        load_state(net, state, weights.name)
    net.eval()
    prep = _preprocessing(arch, net, request, fixed, layout)
    try:
        layers = find_layers(net, prep, keras=arch.route == "keras", size=side)
        model = ExternalModel(net, prep, layers, title=arch.label, keras=arch.route == "keras")
    except (ValueError, RuntimeError) as e:
        raise CheckpointError(f"{weights.name}: {_line(e)}") from None
    problem = output_check(model, side)
    if problem:
        raise CheckpointError(f"{weights.name}: {problem}; tinyviz explains classifiers' logits")
    info = ImportInfo(
        route=arch.route,
        file=weights.name,
        sha256=_digest(weights),
        arch=arch.name,
        graph={"onnx": "model.onnx", "keras": "model.keras"}.get(arch.route, ""),
        code_digest=sources.code_digest(arch.name) if arch.route == "code" else "",
        preprocess=prep,
        head=layers.head,
        channel_layers=layers.channel_layers,
    )
    model.graph_bytes = graph  # the ONNX file as it came, kept in the run
    return model, info


def _preprocessing(arch, net, request: ImportRequest, fixed: int, layout: str) -> Preprocessing:
    import dataclasses

    base = sources.default_preprocessing(arch, net)
    changes: dict = {"layout": layout}
    if fixed and not request.size:
        changes["size"] = fixed  # a graph built for one input size gets that size
    if request.size:
        if fixed and request.size != fixed:
            raise ConfigError(f"the model takes {fixed}x{fixed} images, not --size {request.size}")
        changes["size"] = request.size
    if request.normalize:
        try:
            changes["mean"], changes["std"] = parse_normalize(request.normalize)
        except ValueError as e:
            raise ConfigError(str(e)) from None
    if request.channels:
        changes["channels"] = request.channels
    try:
        return dataclasses.replace(base, **changes)
    except ValueError as e:
        raise ConfigError(_line(e)) from None


def _outputs(model: nn.Module, side: int) -> int:
    with torch.inference_mode():
        out = model(torch.zeros(1, 3, side, side))
    return int(out.shape[1])


# ------------------------------------------------------------------------- writing


def _write(out: Path, model: nn.Module, info: ImportInfo, arch, weights: Path, data) -> None:
    """Everything into a temporary sibling folder, then one rename into place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.importing-"))
    try:
        folder = RunFolder(tmp)
        save_weights(folder.weights, model.state_dict(), {"imported_from": weights.name})
        if info.route == "onnx":
            io.write_bytes(folder.graph(info.graph), model.graph_bytes)
        elif info.route == "keras":
            keras_net.save(model.net, folder.graph(info.graph))
        write_config(folder, _config(model, info, arch, data))
        if out.exists():
            out.rmdir()  # empty: checked before anything was read
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _config(model: nn.Module, info: ImportInfo, arch, data) -> RunConfig:
    name = arch.label
    return RunConfig(
        model=ModelInfo(
            name=name,
            family=info.route,
            source=f"imported from {info.file}",
            params=models.param_count(model),
            flops=_flops(model, _side(data)),
            imported=info,
        ),
        train=TrainConfig(model=name, epochs=1, snapshots=0),
        classes=ClassList(
            tuple(data.classes.wnids), tuple(data.classes.names), tuple(data.classes.full_names)
        ),
        data=DataInfo(str(data.source), len(data.train), len(data.val), _side(data)),
        env=environment(torch.device("cpu")),
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )


def _flops(model: nn.Module, side: int) -> int | None:
    try:
        return models.flops_per_image(model, side)
    except Exception:  # a counter that does not know an operator is no reason to fail
        return None


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


# ------------------------------------------------------------------- after import


CLI_OPTIONS = "--classes, --normalize, --size, --channels"


def near_chance(top1: float, classes: int, options: str = CLI_OPTIONS) -> str:
    """A warning when an imported model scores near chance, else '': under twice chance, and
    under a quarter of the way from chance to 100% (so that two classes at 90% pass).
    `options`: where the user sets class order and preprocessing (the page has its own)."""
    chance = 1.0 / max(classes, 1)
    if top1 >= min(CHANCE_FACTOR * chance, chance + (1 - chance) / 4):
        return ""
    return (
        f"top-1 {top1:.1%} is near chance ({chance:.1%} with {classes:,} classes): if the model "
        "learned anything, the class order or preprocessing used here is likely not what it was "
        f"trained with (see {options})"
    )
