"""An ONNX graph as an `nn.Module` whose layers can be hooked (onnx2torch).

ONNX is plain protobuf: reading it runs no code, which is why a run keeps its graph as
`model.onnx` and converts it again on every load. It is also the route from TensorFlow
(`python -m tf2onnx.convert --saved-model DIR --output model.onnx`).

onnx2torch 1.5.15 refuses what PyTorch's own exporter writes: the weights reach the
convolutions through `Identity` nodes (no converter for Identity at opset 19, a `KeyError`
on the weight below), and small constants come as `Constant` nodes. `fold_constants` turns
both into initializers first, and `_register_newer_reduces` teaches onnx2torch the
opset-18 form of the reductions (axes as an input, not an attribute), which tf2onnx and
newer exporters write for global average pooling.
"""

from __future__ import annotations

import functools

from torch import nn

from tinyviz.errors import CheckpointError

EXPORT_HINT = (
    "export it with torch.onnx.export(model, x, 'model.onnx', dynamo=False, opset_version=17, "
    "dynamic_axes={'input': {0: 'batch'}}) or python -m tf2onnx.convert --opset 17"
)


def load(data: bytes, source: object) -> nn.Module:
    """The graph in `data` (the bytes of an .onnx file) as an `nn.Module` in eval mode."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{source} is not an ONNX file ({_first_line(e)})") from None
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        raise CheckpointError(
            f"{source} keeps its weights in separate files: save it as one file "
            "(onnx.save(model, path, save_as_external_data=False))"
        )
    return convert(fold_constants(model), source)


def convert(model, source: object) -> nn.Module:
    from onnx2torch import convert as onnx2torch_convert

    _register_newer_reduces()
    try:
        net = onnx2torch_convert(model)
    except NotImplementedError as e:
        raise CheckpointError(
            f"{source}: onnx2torch cannot convert it ({_first_line(e)}); {EXPORT_HINT}"
        ) from None
    except (KeyError, ValueError, RuntimeError, TypeError, AttributeError) as e:
        raise CheckpointError(
            f"{source}: the ONNX graph does not convert ({_first_line(e)})"
        ) from None
    return net.eval()


def fold_constants(model):
    """`Constant` nodes and `Identity` nodes of initializers become initializers."""
    from onnx import TensorProto, numpy_helper

    graph = model.graph
    tensors = {t.name: t for t in graph.initializer}
    kept = []
    for node in graph.node:
        value = _constant_value(node)
        if value is not None:
            tensor = numpy_helper.from_array(numpy_helper.to_array(value), node.output[0])
        elif node.op_type == "Identity" and node.input and node.input[0] in tensors:
            tensor = TensorProto()
            tensor.CopyFrom(tensors[node.input[0]])
            tensor.name = node.output[0]
        else:
            kept.append(node)
            continue
        graph.initializer.append(tensor)
        tensors[tensor.name] = tensor
    del graph.node[:]
    graph.node.extend(kept)
    return model


def _constant_value(node):
    """The tensor of a `Constant` node that holds one (`value`), else None."""
    if node.op_type != "Constant" or len(node.attribute) != 1:
        return None
    attr = node.attribute[0]
    return attr.t if attr.name == "value" else None


@functools.cache
def _register_newer_reduces() -> None:
    """onnx2torch converters for ReduceMean/Max/Min/Sum... at opset 18 with constant axes."""
    from onnx2torch.node_converters.reduce import OnnxReduceStaticAxes
    from onnx2torch.node_converters.registry import _CONVERTER_REGISTRY, add_converter
    from onnx2torch.utils.common import OnnxMapping, OperationConverterResult, get_const_value

    def reduce_with_axes_input(node, graph):
        axes = None
        if len(node.input_values) > 1 and node.input_values[1]:
            axes = [int(a) for a in get_const_value(node.input_values[1], graph).tolist()]
        return OperationConverterResult(
            torch_module=OnnxReduceStaticAxes(
                operation_type=node.operation_type,
                axes=axes,
                keepdims=node.attributes.get("keepdims", 1),
            ),
            onnx_mapping=OnnxMapping(inputs=(node.input_values[0],), outputs=node.output_values),
        )

    for op in ("ReduceMean", "ReduceMax", "ReduceMin", "ReduceL1", "ReduceL2", "ReduceProd"):
        if not any(d.operation_type == op and d.version == 18 for d in _CONVERTER_REGISTRY):
            add_converter(operation_type=op, version=18)(reduce_with_axes_input)


def input_shape(data: bytes) -> tuple[int, str]:
    """The square input size the graph was exported with (0: not fixed) and its layout:
    "nchw", or "nhwc" for a graph from TensorFlow (tf2onnx keeps Keras' channels-last)."""
    import onnx

    model = onnx.load_from_string(data)
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim] if inputs else []
    if len(dims) != 4:
        return 0, "nchw"
    if dims[3] == 3 and dims[1] != 3:
        return (dims[1] if dims[1] == dims[2] else 0), "nhwc"
    return (dims[2] if dims[2] == dims[3] else 0), "nchw"


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__
