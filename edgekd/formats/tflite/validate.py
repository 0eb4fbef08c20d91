"""A `.tflite` checked before anything reads its figures or any runtime loads it: TFLM's interpreter trusts the
flatbuffer (a tensor naming a buffer that does not exist crashes it), and a declared shape is where sizes and MACs
come from. Refused with one line: a missing TFL3 identifier, an index (buffer, tensor, opcode) out of range, an
unknown type or operator, a dimension below 1, constant data of another size than its shape, quantisation
parameters that do not match their tensor, and operators whose output shapes are not what their inputs give (for
the operators the rules below know; others are left to TFLM's own checks)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgekd.errors import EdgekdError, first_line
from edgekd.formats.tflite import flatbuffer

ITEM_BITS = {"FLOAT32": 32, "FLOAT16": 16, "FLOAT64": 64, "INT32": 32, "UINT32": 32, "INT64": 64, "UINT64": 64,
             "INT16": 16, "UINT16": 16, "INT8": 8, "UINT8": 8, "BOOL": 8, "INT4": 4, "COMPLEX64": 64}
_QUANTISED = {"INT8", "UINT8", "INT16", "INT4"}
# No tensor of a model a microcontroller runs declares more (TFLM's arena is tried up to 64 MiB; flash is smaller).
TENSOR_LIMIT = 1 << 32


def tensor_bytes(shape, type_name: str) -> int:
    """Bytes of a tensor of `shape`: Python integers, so no shape overflows."""
    return math.ceil(math.prod(int(d) for d in shape) * ITEM_BITS.get(type_name, 32) / 8)


def read_model(path: Path, needed_for: str):
    """The model (schema.ModelT) `path` holds, checked; one EdgekdError line naming the file and the first
    problem."""
    data = path.read_bytes()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise EdgekdError(f"{path}: not a .tflite (no TFL3 identifier at byte 4); give a TensorFlow Lite flatbuffer")
    try:
        model = flatbuffer.unpack(data, needed_for)
    except Exception as err:  # noqa: BLE001 - a corrupt flatbuffer fails anywhere in the generated reader
        raise EdgekdError(f"{path}: not a readable .tflite flatbuffer ({first_line(err)}); export it again") from None
    problem = _problem(model, len(data), flatbuffer.schema(needed_for))
    if problem:
        raise EdgekdError(f"{path}: not a valid .tflite: {problem}; export it again")
    return model


def _names(enum) -> dict[int, str]:
    return {value: name for name, value in vars(enum).items() if not name.startswith("_")}


def _problem(model, file_bytes: int, schema) -> str | None:
    if model.version != 3:
        return f"schema version {model.version} (TFLite's is 3)"
    if not model.subgraphs:
        return "no subgraph"
    buffers, codes = model.buffers or [], model.operatorCodes or []
    operators = _names(schema.BuiltinOperator)
    for index, code in enumerate(codes):
        number = max(code.builtinCode, code.deprecatedBuiltinCode)
        if number not in operators:
            return f"operator code {index}: unknown builtin operator {number}"
        if operators[number] == "CUSTOM" and not code.customCode:
            return f"operator code {index}: a custom operator without a name"
    for index, buffer in enumerate(buffers):
        if buffer.offset > 1 and buffer.offset + buffer.size > file_bytes:
            return f"buffer {index}: its data lies past the end of the file"
    types = _names(schema.TensorType)
    for number, graph in enumerate(model.subgraphs):
        problem = _subgraph_problem(model, graph, buffers, codes, types)
        if problem:
            return f"subgraph {number} {problem}"
    return None


def _subgraph_problem(model, graph, buffers, codes, types: dict[int, str]) -> str | None:
    tensors = graph.tensors or []
    if not graph.operators:
        return "has no operators"
    for index, tensor in enumerate(tensors):
        problem = _tensor_problem(tensor, buffers, types)
        if problem:
            return f"tensor {index}: {problem}"
    for what, indices in (("input", graph.inputs), ("output", graph.outputs)):
        if indices is None or not len(indices):
            return f"declares no {what}"
        bad = [i for i in indices if not 0 <= i < len(tensors)]
        if bad:
            return f"{what} {bad[0]}: no such tensor (it has {len(tensors)})"
    for index, op in enumerate(graph.operators or []):
        if not 0 <= op.opcodeIndex < len(codes):
            return f"operator {index}: opcode {op.opcodeIndex} of {len(codes)}"
        inputs = list(op.inputs if op.inputs is not None else ())
        outputs = list(op.outputs if op.outputs is not None else ())
        bad = [i for i in inputs if not -1 <= i < len(tensors)] + [i for i in outputs if not 0 <= i < len(tensors)]
        if bad:
            return f"operator {index}: tensor {bad[0]} (it has {len(tensors)})"
        if not outputs:
            return f"operator {index}: no output"
        op_type = flatbuffer.op_type(model, op, "checking a .tflite")
        rule = SHAPE_RULES.get(op_type)
        try:
            problem = rule(_Operator(op, inputs, outputs, tensors, buffers, types)) if rule else None
        except AttributeError:  # the options of another operator type than its opcode's
            problem = f"options {type(op.builtinOptions).__name__.removesuffix('T')} do not belong to it"
        if problem:
            return f"operator {index} ({op_type}): {problem}"
    return None


def _tensor_problem(tensor, buffers, types: dict[int, str]) -> str | None:
    if tensor.type not in types:
        return f"unknown element type {tensor.type}"
    shape = [int(d) for d in (tensor.shape if tensor.shape is not None else ())]
    if any(d < 1 for d in shape):
        return f"dimension {min(shape)} in shape {shape} (every dimension is 1 or more)"
    if not 0 <= tensor.buffer < len(buffers):
        return f"buffer {tensor.buffer} (the file has {len(buffers)})"
    nbytes = tensor_bytes(shape, types[tensor.type])
    if nbytes > TENSOR_LIMIT:
        return f"shape {shape} declares {nbytes:,} bytes, more than any device edgekd profiles holds"
    data = buffers[tensor.buffer].data
    if tensor.buffer > 0 and data is not None and len(data) and len(data) != nbytes:
        return f"{len(data):,} bytes of data for shape {shape} of {types[tensor.type]} ({nbytes:,} bytes)"
    return _quantisation_problem(tensor.quantization, shape, types[tensor.type])


def _quantisation_problem(quantisation, shape: list[int], type_name: str) -> str | None:
    scales = [] if quantisation is None or quantisation.scale is None else list(quantisation.scale)
    if not scales:
        return f"a {type_name} tensor without a scale" if type_name in _QUANTISED else None
    zeros = [] if quantisation.zeroPoint is None else list(quantisation.zeroPoint)
    if len(zeros) != len(scales):
        return f"{len(scales)} scale(s) and {len(zeros)} zero point(s)"
    if not all(math.isfinite(s) and s > 0 for s in scales):
        return "a scale that is not a finite positive number"
    if len(scales) > 1 and not (0 <= quantisation.quantizedDimension < len(shape)
                                and shape[quantisation.quantizedDimension] == len(scales)):
        return f"{len(scales)} scales along dimension {quantisation.quantizedDimension} of shape {shape}"
    return None


class _Operator:
    """An operator's tensors as the shape rules read them."""

    def __init__(self, op, inputs, outputs, tensors, buffers, types):
        self.options = op.builtinOptions
        self._inputs, self._outputs, self._tensors = inputs, outputs, tensors
        self._buffers, self._types = buffers, types

    def shape(self, position: int, output: bool = False) -> list[int] | None:
        """The shape of input (or output) `position`; None where the operator has no such tensor."""
        indices = self._outputs if output else self._inputs
        if position >= len(indices) or indices[position] < 0:
            return None
        tensor = self._tensors[indices[position]]
        return [int(d) for d in (tensor.shape if tensor.shape is not None else ())]

    @property
    def input_count(self) -> int:
        return len(self._inputs)

    def type(self, position: int, output: bool = False) -> str | None:
        indices = self._outputs if output else self._inputs
        if position >= len(indices) or indices[position] < 0:
            return None
        return self._types[self._tensors[indices[position]].type]

    def constant(self, position: int) -> list[int] | None:
        """The integer values of a constant input (axes, permutations), None where it is not constant."""
        if position >= len(self._inputs) or self._inputs[position] < 0:
            return None
        tensor = self._tensors[self._inputs[position]]
        data = self._buffers[tensor.buffer].data if tensor.buffer > 0 else None
        dtype = {"INT32": np.int32, "INT64": np.int64}.get(self._types[tensor.type])
        if data is None or not len(data) or dtype is None:
            return None
        return [int(v) for v in np.frombuffer(bytes(bytearray(data)), dtype=dtype)]


def _needs(operator: _Operator, inputs: int, ranks: dict[int, int] | None = None) -> str | None:
    """The operator's first `inputs` inputs and first output exist, of the ranks given (input position: rank)."""
    for position in range(inputs):
        if operator.shape(position) is None:
            return f"input {position} missing"
    for position, rank in (ranks or {}).items():
        shape = operator.shape(position)
        if len(shape) != rank:
            return f"input {position} has rank {len(shape)}, not {rank}"
    return None


def _expect(operator: _Operator, expected: list[int]) -> str | None:
    actual = operator.shape(0, output=True)
    return None if actual == expected else f"output shape {actual}, its inputs give {expected}"


def _spatial(size: int, kernel: int, stride: int, dilation: int, padding: int) -> int:
    """Output length along one axis (TFLite's padding 0: SAME, 1: VALID)."""
    if stride < 1 or dilation < 1:
        return -1
    effective = (kernel - 1) * dilation + 1
    return (size + stride - 1) // stride if padding == 0 else (size - effective + stride) // stride


def _windowed(operator: _Operator, kernel: tuple[int, int], channels: int) -> str | None:
    """An NHWC output of a convolution or pooling window."""
    batch, height, width, _ = operator.shape(0)
    options = operator.options
    if options is None:
        return "no options (strides, padding)"
    dilation = (options.dilationHFactor, options.dilationWFactor) if hasattr(options, "dilationHFactor") else (1, 1)
    return _expect(operator, [batch, _spatial(height, kernel[0], options.strideH, dilation[0], options.padding),
                              _spatial(width, kernel[1], options.strideW, dilation[1], options.padding), channels])


def _conv(operator: _Operator) -> str | None:  # input NHWC, filter [out, h, w, in / groups]
    problem = _needs(operator, 2, {0: 4, 1: 4})
    if problem:
        return problem
    out, height, width, per_group = operator.shape(1)
    if operator.shape(0)[3] % per_group:
        return f"input channels {operator.shape(0)[3]} are not a multiple of the filter's {per_group}"
    return _bias(operator, out) or _windowed(operator, (height, width), out)


def _depthwise(operator: _Operator) -> str | None:  # filter [1, h, w, out]
    problem = _needs(operator, 2, {0: 4, 1: 4})
    if problem:
        return problem
    _, height, width, out = operator.shape(1)
    if out % operator.shape(0)[3]:
        return f"filter channels {out} are not a multiple of the input's {operator.shape(0)[3]}"
    return _bias(operator, out) or _windowed(operator, (height, width), out)


def _bias(operator: _Operator, channels: int) -> str | None:
    bias = operator.shape(2)
    return None if bias is None or math.prod(bias) == channels else f"bias shape {bias} for {channels} channels"


def _pool(operator: _Operator) -> str | None:
    problem = _needs(operator, 1, {0: 4})
    if problem or operator.options is None:
        return problem or "no options (window, strides, padding)"
    return _windowed(operator, (operator.options.filterHeight, operator.options.filterWidth), operator.shape(0)[3])


def _fully_connected(operator: _Operator) -> str | None:  # weights [out, in]
    problem = _needs(operator, 2, {1: 2})
    if problem:
        return problem
    out, depth = operator.shape(1)
    elements = math.prod(operator.shape(0))
    if elements % depth:
        return f"input of {elements} values is not rows of {depth}"
    produced = operator.shape(0, output=True)
    if math.prod(produced) != elements // depth * out or produced[-1:] != [out]:
        return f"output shape {produced} for {elements // depth} row(s) of {out}"
    return _bias(operator, out)


def _batch_matmul(operator: _Operator) -> str | None:
    problem = _needs(operator, 2)
    if problem:
        return problem
    left, right = operator.shape(0), operator.shape(1)
    if len(left) < 2 or len(right) < 2:
        return f"operands of shapes {left} and {right}"
    adjoint = (getattr(operator.options, "adjX", False), getattr(operator.options, "adjY", False))
    rows, inner = (left[-1], left[-2]) if adjoint[0] else (left[-2], left[-1])
    inner_right, columns = (right[-1], right[-2]) if adjoint[1] else (right[-2], right[-1])
    batch = _broadcast(left[:-2], right[:-2])
    if inner != inner_right or batch is None:
        return f"operands of shapes {left} and {right} do not multiply"
    return _expect(operator, [*batch, rows, columns])


def _transpose_conv(operator: _Operator) -> str | None:  # output shape (constant), filter [out, h, w, in], input
    problem = _needs(operator, 3, {1: 4, 2: 4})
    if problem:
        return problem
    out, _, _, depth = operator.shape(1)
    if operator.shape(2)[3] != depth:
        return f"input channels {operator.shape(2)[3]}, the filter takes {depth}"
    declared = operator.constant(0)
    produced = operator.shape(0, output=True)
    if len(produced) != 4 or produced[3] != out or (declared is not None and declared != produced):
        return f"output shape {produced} for a filter of {out} channels (declared {declared})"
    return None


def _broadcast(left: list[int], right: list[int]) -> list[int] | None:
    """NumPy's broadcast of two shapes; None where they do not broadcast."""
    size = max(len(left), len(right))
    left, right = [1] * (size - len(left)) + left, [1] * (size - len(right)) + right
    if any(a != b and 1 not in (a, b) for a, b in zip(left, right)):
        return None
    return [max(a, b) for a, b in zip(left, right)]


def _elementwise(operator: _Operator) -> str | None:
    problem = _needs(operator, 2)
    if problem:
        return problem
    shape = _broadcast(operator.shape(0), operator.shape(1))
    if shape is None:
        return f"inputs of shapes {operator.shape(0)} and {operator.shape(1)} do not broadcast"
    return _same_type(operator) or _expect(operator, shape)


def _same_type(operator: _Operator) -> str | None:
    produced, given = operator.type(0, output=True), operator.type(0)
    return None if produced == given else f"a {given} input gives a {produced} output"


def _unary(operator: _Operator) -> str | None:
    return _needs(operator, 1) or _same_type(operator) or _expect(operator, operator.shape(0))


def _converting(operator: _Operator) -> str | None:  # QUANTIZE, DEQUANTIZE: the type changes, the shape does not
    return _needs(operator, 1) or _expect(operator, operator.shape(0))


def _reshaping(operator: _Operator) -> str | None:
    problem = _needs(operator, 1) or _same_type(operator)
    if problem:
        return problem
    given, produced = operator.shape(0), operator.shape(0, output=True)
    return None if math.prod(given) == math.prod(produced) else \
        f"{math.prod(given)} values reshaped to {produced} ({math.prod(produced)})"


def _transpose(operator: _Operator) -> str | None:
    problem = _needs(operator, 2) or _same_type(operator)
    permutation = operator.constant(1)
    if problem or permutation is None:
        return problem
    given = operator.shape(0)
    if sorted(permutation) != list(range(len(given))):
        return f"permutation {permutation} of a rank-{len(given)} input"
    return _expect(operator, [given[axis] for axis in permutation])


def _reduce(operator: _Operator) -> str | None:  # MEAN, SUM, REDUCE_MAX ...: axes constant; kept or dropped
    problem = _needs(operator, 2) or _same_type(operator)
    axes = operator.constant(1)
    if problem or axes is None:
        return problem
    given = operator.shape(0)
    if any(not -len(given) <= axis < len(given) for axis in axes):
        return f"axes {axes} of a rank-{len(given)} input"
    reduced = {axis % len(given) for axis in axes}
    kept = [1 if axis in reduced else size for axis, size in enumerate(given)]
    if getattr(operator.options, "keepDims", False):
        return _expect(operator, kept)
    return _expect(operator, [size for axis, size in enumerate(given) if axis not in reduced])


def _concatenation(operator: _Operator) -> str | None:
    shapes = [operator.shape(i) for i in range(operator.input_count)]
    if any(shape is None for shape in shapes) or not shapes:
        return "an input missing"
    produced = operator.shape(0, output=True)
    total = sum(math.prod(shape) for shape in shapes)
    return None if math.prod(produced) == total else f"output shape {produced} for {total} values"


# One shape rule per TFLite operator: the output its inputs give, or what is wrong (None: consistent).
SHAPE_RULES: dict[str, Callable[[_Operator], str | None]] = {
    "CONV_2D": _conv, "DEPTHWISE_CONV_2D": _depthwise, "FULLY_CONNECTED": _fully_connected,
    "BATCH_MATMUL": _batch_matmul, "TRANSPOSE_CONV": _transpose_conv,
    "MAX_POOL_2D": _pool, "AVERAGE_POOL_2D": _pool, "L2_POOL_2D": _pool,
    **dict.fromkeys(("ADD", "SUB", "MUL", "DIV", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE", "POW"), _elementwise),
    **dict.fromkeys(("RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "LOGISTIC", "TANH", "LOG", "EXP", "SQRT",
                     "RSQRT", "ABS", "NEG", "SQUARE", "HARD_SWISH", "LEAKY_RELU", "GELU", "SOFTMAX", "LOG_SOFTMAX",
                     "L2_NORMALIZATION", "FLOOR", "CEIL", "ROUND", "SIN", "COS"), _unary),
    "QUANTIZE": _converting, "DEQUANTIZE": _converting, "CAST": _converting,
    **dict.fromkeys(("RESHAPE", "SQUEEZE", "EXPAND_DIMS"), _reshaping),
    "TRANSPOSE": _transpose, "CONCATENATION": _concatenation,
    **dict.fromkeys(("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD"), _reduce),
}
