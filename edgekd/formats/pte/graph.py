"""An ExecuTorch `.pte` program read into the planner's graph (edgekd.formats.memory.GraphRun): its kernel calls in
execution order, every tensor's bytes from its declared sizes, constants (stored in the program) apart, and one
MAC rule per ExecuTorch operator.

A kernel call names its tensors by index without saying which it reads and which it writes: its last argument is
what it returns (its out-tensor, or a list of them); a tensor it names that no call has produced is a view of the
tensor its planned place holds (views are not calls) when of the same bytes, else its scratch buffer."""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from pathlib import Path

from edgekd.errors import EdgekdError, ModelError, first_line
from edgekd.formats.base import FileGraph, frontend_constants
from edgekd.formats.memory import GraphRun, Node
from edgekd.formats.pte.runtime import read_program

# ExecuTorch's ScalarType names → numpy's
_DTYPES = {"FLOAT": "float32", "DOUBLE": "float64", "HALF": "float16", "BFLOAT16": "bfloat16", "CHAR": "int8",
           "BYTE": "uint8", "SHORT": "int16", "INT": "int32", "LONG": "int64", "BOOL": "bool"}
_ITEMSIZE = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2, "int8": 1, "uint8": 1, "int16": 2, "int32": 4,
             "int64": 8, "bool": 1}


def read_pte(path: Path) -> FileGraph:
    """The program's graph; a program whose indices point nowhere or whose sizes are negative is one line naming
    the file."""
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    program = read_program(path)
    try:
        graph = _read_graph(path, program)
    except (IndexError, KeyError, TypeError, AttributeError) as err:  # an index or reference into nothing
        raise EdgekdError(f"{path}: not a valid ExecuTorch program ({type(err).__name__}: {first_line(err, 80)}); "
                          "export it again") from None
    negative = [name for name, shape in graph.run.shapes.items() if any(d < 0 for d in shape)]
    if negative:
        raise EdgekdError(f"{path}: not a valid ExecuTorch program (a negative size: {negative[0]}); export it again")
    return graph


def _read_graph(path: Path, program) -> FileGraph:
    plan = program.execution_plan[0]
    tensors = {index: value.val for index, value in enumerate(plan.values) if type(value.val).__name__ == "Tensor"}
    lists = {index: [int(i) for i in value.val.items] for index, value in enumerate(plan.values)
             if type(value.val).__name__ == "TensorList"}
    names = {index: f"value {index}" for index in tensors}
    index_of = {name: index for index, name in names.items()}
    shapes = {names[i]: tuple(int(d) for d in t.sizes) for i, t in tensors.items()}
    dtypes = {names[i]: _DTYPES.get(t.scalar_type.name, t.scalar_type.name.lower()) for i, t in tensors.items()}
    nbytes = {name: math.prod(shapes[name]) * _ITEMSIZE.get(dtypes[name], 4) for name in shapes}
    constant = {names[i] for i, t in tensors.items()
                if t.data_buffer_idx > 0 or (t.extra_tensor_info is not None and t.allocation_info is None)}
    seen = {names[i] for i in plan.inputs if i in names}
    holder = {_place(tensors[i]): names[i] for i in plan.inputs if i in names}  # which tensor a planned place holds

    def resolved(index: int) -> str:
        """A tensor no call has produced yet is a view of the one its planned place holds, if of the same bytes
        (views are not calls); otherwise a scratch buffer of the call that names it."""
        name = names[index]
        if name in seen or name in constant:
            return name
        held = holder.get(_place(tensors[index]))
        return held if held is not None and nbytes[held] == nbytes[name] else name

    nodes, weights = [], set()
    for step, instruction in enumerate(plan.chains[0].instructions):
        call = instruction.instr_args
        if type(call).__name__ != "KernelCall":
            raise EdgekdError(f"{path}: {type(call).__name__} instructions (delegates, control flow) are not profiled; "
                              "profile a program of kernel calls (edgekd export --format pte)")
        operator = plan.operators[call.op_index]
        # the last argument is what the call returns: its out-tensor, or the list of them
        results = [names[i] for i in _tensor_indices(call.args[-1:], names, lists)]
        others = [resolved(i) for i in _tensor_indices(call.args, names, lists) if names[i] not in results]
        inputs = tuple(dict.fromkeys(name for name in others if name in seen or name in constant))
        outputs = tuple(dict.fromkeys([*(name for name in others if name not in inputs), *results]))  # + scratch
        seen.update(outputs)
        holder.update({_place(tensors[index_of[name]]): name for name in outputs})
        rule = MAC_RULES.get(operator.name)
        if rule:
            weights.update(name for name in inputs[1:3] if name in constant)
        nodes.append(Node(f"call {step}", operator.name, inputs, outputs,
                          rule([shapes[name] for name in inputs], shapes[results[-1]]) if rule and results else 0))
    outputs = [resolved(i) for i in plan.outputs if i in names]
    run = GraphRun(nodes, [names[i] for i in plan.inputs if i in names], outputs, shapes,
                   {name: size for name, size in nbytes.items() if name not in constant}, constant)
    read = _constants_read(run, tensors, index_of)
    bytes_by_dtype: dict[str, int] = {}
    for name in sorted(read, key=lambda name: -nbytes[name]):
        bytes_by_dtype[dtypes[name]] = bytes_by_dtype.get(dtypes[name], 0) + nbytes[name]
    # parameters: weights and biases of MAC ops, and float constants elsewhere (requantisation tables are int32)
    counted = (weights | {name for name in constant if dtypes[name].startswith(("float", "bfloat"))}) & read
    frontend = frontend_constants(run, "aten::log10") & counted
    return FileGraph(run, "pte", dict(sorted(bytes_by_dtype.items(), key=lambda item: -item[1])),
                     {dtypes[name] for name in weights if len(shapes[name]) > 1},
                     sum(math.prod(shapes[name]) for name in counted), sum(math.prod(shapes[name]) for name in frontend),
                     sum(nbytes[name] for name in frontend), path.stat().st_size,
                     len(zlib.compress(path.read_bytes(), 9)))


def _constants_read(run: GraphRun, tensors: dict, index_of: dict) -> set[str]:
    """The constants the calls read, one per stored buffer: the compiler shares a buffer between equal constants and
    keeps some that nothing reads (a convolution's weights before their channels-last copy)."""
    stored: dict[tuple, str] = {}
    for name in (name for node in run.nodes for name in node.inputs if name in run.initializers):
        stored.setdefault(_storage(tensors[index_of[name]]), name)
    return set(stored.values())


def _tensor_indices(args, names: dict, lists: dict) -> list[int]:
    """The tensors among a call's arguments, those inside tensor lists included, in order."""
    return [j for i in args for j in ([i] if i in names else lists.get(i, ())) if j in names]


def _place(tensor) -> tuple | None:
    """Where the compiler planned a tensor (memory id and offset); None where it did not."""
    info = tensor.allocation_info
    return None if info is None else (info.memory_id, info.memory_offset_low, info.memory_offset_high)


def _storage(tensor) -> tuple:
    """Where a constant's bytes are: a buffer inside the program, or named data beside it."""
    info = tensor.extra_tensor_info
    return ("named", info.fully_qualified_name) if info is not None and tensor.data_buffer_idx == 0 else \
        ("buffer", tensor.data_buffer_idx)


def _per_output_weights(inputs, output) -> int:  # convolution [out, in/groups, k...]; Cortex-M conv [out, h, w, in]
    return math.prod(output) * math.prod(inputs[1][1:])


def _depthwise(inputs, output) -> int:  # Cortex-M depthwise [1, h, w, out]
    return math.prod(output) * inputs[1][1] * inputs[1][2]


def _matmul(inputs, output) -> int:  # [.., m, k] @ [.., k, n]
    return math.prod(output) * inputs[0][-1]


def _second_input_inner(inputs, output) -> int:  # addmm: bias + [m, k] @ [k, n]; linear: x @ weights [out, k]ᵀ
    return math.prod(output) * inputs[1][-1]


# One MAC rule per ExecuTorch operator, from the shapes of its input tensors and its result; every other operator
# costs no multiply-accumulates.
MAC_RULES: dict[str, Callable[[list, tuple], int]] = {
    "aten::convolution": _per_output_weights, "cortex_m::quantized_conv2d": _per_output_weights,
    "cortex_m::quantized_depthwise_conv2d": _depthwise, "aten::mm": _matmul, "aten::bmm": _matmul,
    "cortex_m::quantized_batch_matmul": _matmul, "aten::addmm": _second_input_inner,
    "aten::linear": _second_input_inner, "cortex_m::quantized_linear": _second_input_inner,
}
