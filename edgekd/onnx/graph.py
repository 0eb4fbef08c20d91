"""Static facts of an ONNX graph: load with validation, parameters, storage, MACs."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Callable

import numpy as np
import onnx

from edgekd.errors import ModelError, first_line

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
        raise ModelError(f"{path}: not a valid ONNX model ({first_line(err)})") from None
    if not model.graph.node:
        raise ModelError(f"{path}: the ONNX graph has no nodes")
    return model


def model_files(path: Path | str) -> list[Path]:
    """The model file and the external-data files its weights are stored in (as a device must store them)."""
    path = Path(path)
    header = onnx.load(str(path), load_external_data=False)
    locations = {entry.value for tensor in header.graph.initializer for entry in tensor.external_data
                 if entry.key == "location"}
    return [path, *(path.parent / location for location in sorted(locations))]


def storage_bytes(path: Path | str) -> int:
    return sum(file.stat().st_size for file in model_files(path))


def weight_initializers(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    """Float and quantised weight initializers: not shapes, axes, or quantisation scales and zero points."""
    scale_like = {
        name for node in model.graph.node if node.op_type in _QUANT_OPS for name in node.input[1:]
    }
    return [t for t in model.graph.initializer
            if t.name not in scale_like and t.data_type in (_FLOAT_TYPES | _QUANT_TYPES)]


def parameter_count(model: onnx.ModelProto) -> int:
    return sum(int(np.prod(t.dims)) if t.dims else 1 for t in weight_initializers(model))


Shapes = dict[str, tuple[int, ...]]


def _conv_macs(node: onnx.NodeProto, shapes: Shapes, weight_index: int = 1) -> int:
    """Each output element costs C_in/group·prod(kernel) MACs; weight is (C_out, C_in/group, *kernel)."""
    weight, out = shapes.get(node.input[weight_index]), shapes.get(node.output[0])
    return int(np.prod(out)) * int(np.prod(weight[1:])) if weight and out else 0


def _conv_transpose_macs(node: onnx.NodeProto, shapes: Shapes) -> int:
    """Each input element is scattered through C_out/group·prod(kernel) weights; weight is (C_in, C_out/group, …)."""
    weight, inp = shapes.get(node.input[1]), shapes.get(node.input[0])
    return int(np.prod(inp)) * int(np.prod(weight[1:])) if weight and inp else 0


def _matmul_macs(node: onnx.NodeProto, shapes: Shapes) -> int:
    """Each output element costs the inner dimension of A (its second-last with Gemm's transA)."""
    a, out = shapes.get(node.input[0]), shapes.get(node.output[0])
    if not a or not out:
        return 0
    transposed_a = any(att.name == "transA" and att.i for att in node.attribute)
    return int(np.prod(out)) * int(a[-2] if transposed_a and len(a) >= 2 else a[-1])


# One MAC rule per op type (onnx-tool's layout), over the op types exported and fused graphs contain; every other
# op costs no multiply-accumulates.
MAC_RULES: dict[str, Callable[[onnx.NodeProto, Shapes], int]] = {
    "Conv": _conv_macs, "FusedConv": _conv_macs, "NhwcFusedConv": _conv_macs, "ConvInteger": _conv_macs,
    "QLinearConv": lambda node, shapes: _conv_macs(node, shapes, weight_index=3),
    "ConvTranspose": _conv_transpose_macs,
    "MatMul": _matmul_macs, "FusedMatMul": _matmul_macs, "Gemm": _matmul_macs, "MatMulInteger": _matmul_macs,
    "MatMulIntegerToFloat": _matmul_macs, "QLinearMatMul": _matmul_macs,
}


def node_macs(node: onnx.NodeProto, shapes: Shapes) -> int:
    """Multiply-accumulates of one node from its tensor shapes."""
    rule = MAC_RULES.get(node.op_type)
    return rule(node, shapes) if rule else 0


def bytes_by_dtype(model: onnx.ModelProto) -> dict[str, int]:
    """Initializer bytes grouped by element type (what the weights cost in each precision)."""
    totals: dict[str, int] = {}
    for tensor in model.graph.initializer:
        name = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).name
        count = int(np.prod(tensor.dims)) if tensor.dims else 1
        totals[name] = totals.get(name, 0) + count * onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    return dict(sorted(totals.items(), key=lambda item: -item[1]))


def zipped_bytes(path: Path | str) -> int:
    """The files deflated as a zip or a compressed firmware image would hold them."""
    return sum(len(zlib.compress(file.read_bytes(), 9)) for file in model_files(path))


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
