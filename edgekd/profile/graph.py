"""Static facts of an ONNX graph: load with validation, parameters, storage, MACs."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import onnx

from edgekd.errors import ModelError

# Inputs of these ops at positions ≥ 1 are quantisation scales/zero points, not parameters.
_QUANT_OPS = {"QuantizeLinear", "DequantizeLinear"}
_FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.DOUBLE}
_QUANT_TYPES = {onnx.TensorProto.INT8, onnx.TensorProto.UINT8, onnx.TensorProto.INT4, onnx.TensorProto.UINT4}


def load_model(path: Path | str) -> onnx.ModelProto:
    """Load and check an ONNX file; any failure is one ModelError line."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as err:  # protobuf decode errors, checker failures, missing external data
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelError(f"{path}: not a valid ONNX model ({first_line[:200]})") from None
    if not model.graph.node:
        raise ModelError(f"{path}: the ONNX graph has no nodes")
    return model


def storage_bytes(path: Path | str, model: onnx.ModelProto) -> int:
    """The file plus any external-data files it references."""
    path = Path(path)
    total = path.stat().st_size
    locations = set()
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                locations.add(entry.value)
    for location in locations:
        external = path.parent / location
        if external.is_file():
            total += external.stat().st_size
    return total


def weight_initializers(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    """Float and quantised weight initializers: not shapes, axes, or quantisation scales and zero points."""
    scale_like = {
        name for node in model.graph.node if node.op_type in _QUANT_OPS for name in node.input[1:]
    }
    return [t for t in model.graph.initializer
            if t.name not in scale_like and t.data_type in (_FLOAT_TYPES | _QUANT_TYPES)]


def parameter_count(model: onnx.ModelProto) -> int:
    return sum(int(np.prod(t.dims)) if t.dims else 1 for t in weight_initializers(model))


def node_macs(node: onnx.NodeProto, shapes: dict[str, tuple[int, ...]]) -> int:
    """Multiply-accumulates of one node from its tensor shapes (0 for ops that are not conv/matmul-like)."""
    op = node.op_type
    if op in ("Conv", "FusedConv", "ConvInteger", "QLinearConv", "NhwcFusedConv", "ConvTranspose"):
        weight_index = 3 if op == "QLinearConv" else 1
        out_index = 0
        weight = shapes.get(node.input[weight_index])
        out = shapes.get(node.output[out_index])
        if not weight or not out:
            return 0
        # weight: (C_out, C_in/group, *kernel); each output element costs C_in/group·prod(kernel) MACs
        if op == "ConvTranspose":
            inp = shapes.get(node.input[0])
            return int(np.prod(inp)) * int(np.prod(weight[1:])) if inp else 0
        return int(np.prod(out)) * int(np.prod(weight[1:]))
    if op in ("MatMul", "MatMulInteger", "QLinearMatMul", "FusedMatMul", "Gemm", "MatMulIntegerToFloat"):
        a_index, b_index = (0, 3) if op == "QLinearMatMul" else (0, 1)
        a, out = shapes.get(node.input[a_index]), shapes.get(node.output[0])
        if not a or not out:
            return 0
        transposed_a = any(att.name == "transA" and att.i for att in node.attribute)
        inner = a[-2] if transposed_a and len(a) >= 2 else a[-1]
        return int(np.prod(out)) * int(inner)
    return 0


def bytes_by_dtype(model: onnx.ModelProto) -> dict[str, int]:
    """Initializer bytes grouped by element type (what the weights cost in each precision)."""
    totals: dict[str, int] = {}
    for tensor in model.graph.initializer:
        name = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).name
        count = int(np.prod(tensor.dims)) if tensor.dims else 1
        totals[name] = totals.get(name, 0) + count * onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    return dict(sorted(totals.items(), key=lambda item: -item[1]))


def zipped_bytes(path: Path | str) -> int:
    """The file deflated as a zip or a compressed firmware image would hold it."""
    return len(zlib.compress(Path(path).read_bytes(), 9))


def frontend_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of every node up to and including the first Log reached from the input: the log-mel front-end.

    Found by walking the graph, not by names: the Log's ancestors are exactly the framing, DFT, power and mel
    nodes. Quantising them costs embedding cosine (0.99998 → 0.994 measured), so they stay FP32.
    """
    producer = {out: node for node in model.graph.node for out in node.output}
    logs = [node for node in model.graph.node if node.op_type == "Log"]
    if not logs:
        return []
    keep, stack = set(), [logs[0]]
    while stack:
        node = stack.pop()
        if node.name in keep:
            continue
        keep.add(node.name)
        stack.extend(producer[i] for i in node.input if i in producer)
    return [node.name for node in model.graph.node if node.name in keep]


def frontend_only_initializers(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    """The initializers only the log-mel front-end reads (its DFT and mel matrices), in the graph's order."""
    front = set(frontend_nodes(model))
    read_by_front = {i for n in model.graph.node if n.name in front for i in n.input}
    read_elsewhere = {i for n in model.graph.node if n.name not in front for i in n.input}
    return [t for t in model.graph.initializer if t.name in read_by_front - read_elsewhere]


def _elements_and_bytes(tensors: list[onnx.TensorProto]) -> tuple[int, int]:
    elements = nbytes = 0
    for tensor in tensors:
        if tensor.data_type in (_FLOAT_TYPES | _QUANT_TYPES):
            count = int(np.prod(tensor.dims)) if tensor.dims else 1
            elements += count
            nbytes += count * onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    return elements, nbytes


def frontend_constants(model: onnx.ModelProto) -> tuple[int, int]:
    """(elements, bytes) of the constants only the log-mel front-end reads (DFT and mel matrices): fixed signal
    processing rather than learned weights, reported apart so a network's size compares with published figures."""
    return _elements_and_bytes(frontend_only_initializers(model))


# Retrieval-augmented students ship their knowledge base as initializers under this name (and the quantiser's
# derived names), so its share of the flash is reported apart from the network's.
KNOWLEDGE_BASE_PREFIX = "knowledge_base"


def knowledge_base_constants(model: onnx.ModelProto) -> tuple[int, int]:
    """(elements, bytes) of a retrieval knowledge base stored in the graph."""
    return _elements_and_bytes([t for t in weight_initializers(model) if t.name.startswith(KNOWLEDGE_BASE_PREFIX)])
