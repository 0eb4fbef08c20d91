"""The arena TensorFlow Lite Micro needs for a model, predicted from its ONNX graph: the planned tensors (TFLM's
head, which edgekd's arena plan equals on the networks measured) plus TFLM's persistent tail, one rule per op type.

The tail's parts are those TFLM's recording allocator reports: a TfLiteEvalTensor per tensor, a
NodeAndRegistration per operator, a persistent TfLiteTensor per model input and output (with its quantisation
arrays when int8), each kernel's OpData, and the buffers some kernels keep (convolutions: a multiplier and a shift
per output channel; BATCH_MATMUL: a transposed copy of a non-constant right operand). Struct sizes are those of the
pinned tflite-micro build on a 64-bit host, where `edgekd profile MODEL.tflite` measures; a 32-bit microcontroller's
structs are smaller (4-byte pointers), so there the prediction is an upper bound.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

from edgekd.formats.memory import (
    LARGEST_FIRST,
    Buffer,
    GraphRun,
    Node,
    aligned,
    place,
    plan_memory,
)
from edgekd.formats.tflite.runtime import TflmArena

EVAL_TENSOR = 24  # sizeof(TfLiteEvalTensor): data and dims pointers, type
NODE = 64  # sizeof(NodeAndRegistration)
IO_TENSOR = 64  # sizeof(TfLiteTensor) kept for each model input and output
IO_QUANTISATION = 32  # an int8 input's or output's scale and zero-point arrays
OP_DATA = 56  # a kernel's OpData (measured 52-57 B a kernel on the networks of benchmarks/runtimes.py)
BOOKKEEPING = 560  # model, subgraph and planner records (measured on single-op models)
PER_OPERATOR = 20  # further per-operator records (measured, 17-30 B)

# Quantize and dequantize nodes mark a QDQ graph's int8 regions; TFLM's full-integer graph has no such operators.
_QDQ = {"QuantizeLinear", "DequantizeLinear"}
# Where a node reads its weights and bias (quantised ops also read scales and zero points, which TFLM keeps in its
# quantisation records instead).
_WEIGHTS = {"QLinearConv": (3, 8), "QGemm": (3, 6), "QLinearMatMul": (3,)}
_VIEWS = {"Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity"}  # TFLM kernels without OpData


def _per_channel(node: Node, run: GraphRun) -> int:
    """A multiplier and a shift (int32) per output channel."""
    channels = run.shapes[node.outputs[0]][1] if len(run.shapes.get(node.outputs[0], ())) > 1 else 1
    return 2 * aligned(4 * channels)


def _transposed_operand(node: Node, run: GraphRun) -> int:
    """TFLM's BATCH_MATMUL transposes a right operand that is not constant into a persistent copy."""
    right = node.inputs[1]
    if right in run.initializers:
        return 0  # converted to FULLY_CONNECTED, whose weights stay in flash
    return EVAL_TENSOR + aligned(4 * (len(run.shapes[right]) + 1)) + aligned(run.nbytes[right])


# One rule per ONNX op type (as onnxruntime's optimised graph names them): persistent bytes beyond the OpData.
PERSISTENT_RULES: dict[str, Callable[[Node, GraphRun], int]] = {
    "Conv": _per_channel, "FusedConv": _per_channel, "QLinearConv": _per_channel, "ConvInteger": _per_channel,
    "MatMul": _transposed_operand, "FusedMatMul": _transposed_operand,
}


# Ops onnxruntime runs in float between a DequantizeLinear and a QuantizeLinear (it has no integer kernel) but the
# AI Edge Quantizer makes int8 (measured: dscnn's mean). REDUCE_MAX is not among them: it stays float there too.
_INT8_IN_TFLM = {"ReduceMean"}


def tflm_arena_bytes(buffers: list[Buffer]) -> int:
    """The arena TFLM's own planner (largest first) gives these buffers (their offsets left as they were)."""
    return place([replace(b) for b in buffers], LARGEST_FIRST)


def predict_tflm_arena(run: GraphRun) -> TflmArena:
    """TFLM's head (edgekd's arena plan of the graph as TFLM holds it) and predicted tail for the model `run`
    describes."""
    head = tflm_arena_bytes(plan_memory(_as_tflm_holds_it(run)).buffers)
    operators = [node for node in run.nodes if node.op_type not in _QDQ]
    activations = {out for node in operators for out in node.outputs} | set(run.inputs)
    constants = {name for node in operators for position, name in enumerate(node.inputs)
                 if name in run.initializers and run.shapes.get(name) and position in _WEIGHTS.get(node.op_type, (1, 2))}
    int8_io = sum(1 for name in (*run.inputs, *run.outputs) if run.nbytes[name] == math.prod(run.shapes[name]))
    tail = (BOOKKEEPING + EVAL_TENSOR * len(activations | constants) + (NODE + PER_OPERATOR) * len(operators)
            + IO_TENSOR * (len(run.inputs) + len(run.outputs)) + IO_QUANTISATION * int8_io
            + sum(OP_DATA for node in operators if node.op_type not in _VIEWS)
            + sum(PERSISTENT_RULES[node.op_type](node, run) for node in operators
                  if node.op_type in PERSISTENT_RULES))
    return TflmArena(head, tail, head + tail, measured=False)


def _as_tflm_holds_it(run: GraphRun) -> GraphRun:
    """`run` as TFLM holds it: reshapes copy; onnxruntime's float detours through ops TFLM runs in int8 are gone
    (such a DequantizeLinear, and the QuantizeLinear after the op, become views of their int8 input)."""
    consumers: dict[str, list[Node]] = {}
    for node in run.nodes:
        for name in node.inputs:
            consumers.setdefault(name, []).append(node)
    folded = set()
    for node in run.nodes:
        if node.op_type == "DequantizeLinear" and node.inputs[0] not in run.initializers:
            after = consumers.get(node.outputs[0], [])
            if after and all(op.op_type in _INT8_IN_TFLM for op in after):
                folded.add(node.name)
                folded.update(q.name for op in after for out in op.outputs for q in consumers.get(out, [])
                              if q.op_type == "QuantizeLinear")
    # TFLM's RESHAPE copies into a buffer of its own (planned so: no aliasing reproduced its head on 40 models)
    return replace(run, nodes=[replace(node, alias=node.name in folded) for node in run.nodes])
