"""Rebuilding an imported model (`tinyviz import`) from its run folder, without pickles.

The network comes from where `ImportInfo` says: torchvision or timm by name, the user's
code by its file (run again; a changed or missing file is refused in one line), or the
graph kept in the run (`model.onnx`, converted again by onnx2torch; `model.keras`, loaded
by Keras with `safe_mode=True`). The weights then come from `model.safetensors` as for any
run (`weights.load_model`), and the `ExternalModel` wrapper adds the preprocessing and the
names the explainers need.
"""

from __future__ import annotations

from pathlib import Path

from .. import io
from ..models import keras_net, onnx_net, sources
from ..models.external import ExternalModel, Layers
from .folder import MAX_WEIGHTS, ImportInfo, RunConfig, RunFolder


def rebuild(config: RunConfig, run_dir: Path | None) -> ExternalModel:
    """The untrained wrapper of an imported run's network (weights still to be loaded)."""
    info = config.model.imported
    assert info is not None and info.route != "tinyviz"
    if info.route in ("onnx", "keras"):
        if run_dir is None:
            raise ValueError("an imported ONNX or Keras model is rebuilt from its run folder")
        folder = RunFolder(Path(run_dir))
        graph = folder.graph(info.graph)
        data = io.read_bytes(graph, max_bytes=MAX_WEIGHTS, inside=folder.path)
        net = onnx_net.load(data, graph) if info.route == "onnx" else keras_net.load(graph)
    else:
        arch = sources.Arch(info.route, info.arch)
        net = sources.build(arch, len(config.classes.wnids), info.code_digest)
    return ExternalModel(
        net.eval(),
        info.preprocess,
        Layers(info.head, info.channel_layers),
        title=config.model.name,
        keras=info.route == "keras",
        order=info.output_order,
    )


def describe(info: ImportInfo) -> str:
    """How an imported run turns pixels into its outputs, in one line for the Models page:
    what a student checks when its score is not what their own code measured."""
    # names the user chose, shown as `shown_name` says; user code by its file's name only
    arch = io.shown_name(sources.Arch(info.route, info.arch).label)
    if info.route == "tinyviz":
        how = f"tinyviz's {arch} (its own resizing and normalisation)"
    else:
        kind = {"onnx": "an ONNX graph", "keras": "a Keras model"}.get(info.route, arch)
        how = f"{kind}; {info.preprocess.describe()}"
    order = f"; classes in the order of {io.shown_name(info.class_order)}"
    return f"{io.shown_name(info.file)}: {how}{order if info.class_order else ''}"
