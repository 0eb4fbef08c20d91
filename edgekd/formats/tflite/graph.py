"""A `.tflite` flatbuffer read into the planner's graph (edgekd.formats.memory.GraphRun): operators in execution
order, every tensor's bytes from its declared shape, constants apart. Parsed with the schema tflite-micro ships, so
profiling a `.tflite` needs nothing TFLM itself does not."""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from pathlib import Path

from edgekd.errors import ModelError
from edgekd.formats.base import FileGraph, frontend_constants
from edgekd.formats.memory import GraphRun, Node
from edgekd.formats.tflite import flatbuffer
from edgekd.formats.tflite.validate import read_model, tensor_bytes


def read_tflite(path: Path) -> FileGraph:
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    needed_for = f"profiling {path}"
    schema = flatbuffer.schema(needed_for)
    model = read_model(path, needed_for)  # checked: every index in range, shapes consistent
    graph = model.subgraphs[0]
    types = {value: name for name, value in vars(schema.TensorType).items() if not name.startswith("_")}
    tensors = graph.tensors or []
    names = [_tensor_name(t, i) for i, t in enumerate(tensors)]
    shapes = [tuple(int(d) for d in (t.shape if t.shape is not None else ())) for t in tensors]
    constant = {i for i, t in enumerate(tensors) if t.buffer > 0 and model.buffers[t.buffer].data is not None}
    nbytes = {names[i]: tensor_bytes(shapes[i], types[t.type]) for i, t in enumerate(tensors)}
    nodes, weights = [], set()
    for index, op in enumerate(graph.operators):
        op_type = flatbuffer.op_type(model, op, needed_for)
        inputs = [i for i in (op.inputs if op.inputs is not None else ()) if i >= 0]
        outputs = [i for i in (op.outputs if op.outputs is not None else ()) if i >= 0]
        rule = MAC_RULES.get(op_type)
        if rule:  # filter and bias
            weights.update(i for i in inputs[1:3] if i in constant)
        nodes.append(Node(f"op {index}", op_type, tuple(names[i] for i in inputs),
                          tuple(names[i] for i in outputs), rule([shapes[i] for i in inputs],
                                                                 [shapes[i] for i in outputs]) if rule else 0))
    dtype_of = {i: types[tensors[i].type].lower() for i in constant}
    bytes_by_dtype: dict[str, int] = {}
    for i in sorted(constant, key=lambda i: -nbytes[names[i]]):
        bytes_by_dtype[dtype_of[i]] = bytes_by_dtype.get(dtype_of[i], 0) + nbytes[names[i]]
    # parameters: weights and biases of MAC ops, and float constants elsewhere (shapes and axes are int32)
    counted = weights | {i for i in constant if dtype_of[i].startswith("float")}
    run = GraphRun(nodes, [names[i] for i in graph.inputs if i not in constant], [names[i] for i in graph.outputs],
                   dict(zip(names, shapes)), nbytes, {names[i] for i in constant})
    frontend = frontend_constants(run, "LOG") & {names[i] for i in counted}
    index_of = {name: i for i, name in enumerate(names)}
    return FileGraph(run, "tflite", dict(sorted(bytes_by_dtype.items(), key=lambda item: -item[1])),
                     {dtype_of[i] for i in weights if len(shapes[i]) > 1},
                     sum(math.prod(shapes[i]) for i in counted),
                     sum(math.prod(shapes[index_of[n]]) for n in frontend), sum(nbytes[n] for n in frontend),
                     path.stat().st_size, len(zlib.compress(path.read_bytes(), 9)))


def _tensor_name(tensor, index: int) -> str:
    """Unique: converters may give several tensors one name."""
    name = tensor.name.decode(errors="replace") if isinstance(tensor.name, bytes) else tensor.name
    return f"{index}:{name or 'tensor'}"


def _conv(inputs, outputs) -> int:  # filter [out, h, w, in]
    _, height, width, channels = inputs[1]
    return math.prod(outputs[0]) * height * width * channels


def _depthwise(inputs, outputs) -> int:  # filter [1, h, w, out]
    return math.prod(outputs[0]) * inputs[1][1] * inputs[1][2]


def _fully_connected(inputs, outputs) -> int:  # weights [out, in]
    return math.prod(outputs[0]) * inputs[1][-1]


def _batch_matmul(inputs, outputs) -> int:  # adj_x is never set by the converters edgekd uses
    return math.prod(outputs[0]) * inputs[0][-1]


def _transpose_conv(inputs, outputs) -> int:  # output_shape, filter [out, h, w, in], input
    out, height, width, _ = inputs[1]
    return math.prod(inputs[2]) * out * height * width


# One MAC rule per TFLite op type, from input and output shapes; every other op costs no multiply-accumulates.
MAC_RULES: dict[str, Callable[[list, list], int]] = {
    "CONV_2D": _conv, "DEPTHWISE_CONV_2D": _depthwise, "FULLY_CONNECTED": _fully_connected,
    "BATCH_MATMUL": _batch_matmul, "TRANSPOSE_CONV": _transpose_conv,
}
