"""A Keras 3 model as an `nn.Module`, through Keras' torch backend.

With `KERAS_BACKEND=torch`, Keras 3 layers are `torch.nn.Module`s: forward hooks on them
work and gradients reach the input, so every explainer works on them (their maps are
channels-last; `tinyviz.models.external` shows them as NCHW). The backend is chosen when
Keras is first imported, so it is set here before that import; a process that already
imported Keras with another backend cannot switch, which is said in one line.

Files are loaded with `safe_mode=True`: a `Lambda` layer's Python code is refused rather
than run. A run keeps the model as `model.keras` (a zip of JSON and HDF5 weights).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from torch import nn

from tinyviz.errors import CheckpointError

SUFFIXES = (".keras", ".h5", ".hdf5")
ONNX_ROUTE = (
    "convert it to ONNX instead (python -m tf2onnx.convert --saved-model DIR --opset 17 "
    "--output model.onnx) and import the .onnx file"
)


def keras():
    """The `keras` module on the torch backend, or a one-line reason why not."""
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = "torch"
    try:
        import keras as k
    except ImportError:
        raise CheckpointError(f"Keras 3 is not installed; or {ONNX_ROUTE}") from None
    if not k.__version__.startswith("3.") or k.backend.backend() != "torch":
        raise CheckpointError(
            f"this process has Keras {k.__version__} on the {k.backend.backend()} backend; "
            f"tinyviz needs Keras 3 on torch (KERAS_BACKEND=torch); or {ONNX_ROUTE}"
        )
    return k


def load(path: Path, source: object = None) -> nn.Module:
    """The Keras model in `path` (.keras, or a Keras 2 .h5 that Keras 3 reads)."""
    k = keras()
    try:
        model = k.saving.load_model(str(path), compile=False, safe_mode=True)
    except Exception as e:  # Keras raises many kinds for files it cannot read
        text = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"{source or path}: Keras cannot load it ({text}); {ONNX_ROUTE}"
        ) from None
    if not isinstance(model, nn.Module):
        raise CheckpointError(f"{source or path}: not a Keras model on the torch backend")
    return model


def input_size(model) -> int:
    """The square input size the model was built for (0: any), from its input shape."""
    shape = tuple(getattr(model, "input_shape", None) or ())
    if len(shape) == 4 and shape[1] and shape[1] == shape[2] and shape[3] == 3:
        return int(shape[1])
    return 0


def takes_0_255(model) -> bool:
    """Whether the model rescales its input itself: its first layer is a `Rescaling` to
    [0, 1] or [-1, 1] (scale 1/255 or 1/127.5), the usual head of a model trained on
    `image_dataset_from_directory`'s 0-255 pixels."""
    layers = [la for la in getattr(model, "layers", ()) if type(la).__name__ != "InputLayer"]
    if not layers or type(layers[0]).__name__ != "Rescaling":
        return False
    scale = getattr(layers[0], "scale", None)
    try:
        return any(abs(float(scale) - s) < 1e-6 for s in (1 / 255, 1 / 127.5))
    except (TypeError, ValueError):  # a per-channel scale: not guessed
        return False


def save(model, path: Path) -> None:
    """Save as a `.keras` file (what the run keeps, whatever the model came as)."""
    model.save(str(path))
