"""Activation memory of an ONNX model, planned over onnxruntime's optimised graph with real shapes.

The raw exported graph overestimates memory (1.6x FP32, 4-8x QDQ: unfused Q/DQ pairs, BN and activation nodes);
what a runtime allocates is closer to the graph after fusions. So: let onnxruntime optimise the model and save it,
run that graph once with every intermediate exposed to record true shapes and dtypes, then walk the nodes in
execution order, allocating each output when produced and freeing each tensor after its last use.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from edgekd.errors import ModelError, first_line
from edgekd.files import atomic_write
from edgekd.onnx.graph import node_macs
from edgekd.onnx.session import create_session

# Ops whose output is a view of their first input: no new buffer, the input lives as long as the view.
_ALIAS_OPS = {"Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity"}

_ORT_TYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8, "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


@dataclass
class NodeStep:
    index: int
    name: str
    op_type: str
    live_bytes: int  # bytes live while this node runs (its inputs and outputs included)
    output_bytes: int
    macs: int


@dataclass(frozen=True)
class Node:
    """One operator as the planner sees it, whatever format it came from."""

    name: str
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    macs: int = 0
    alias: bool = False  # its output is a view of its first input: no buffer of its own


@dataclass
class GraphRun:
    """One graph in execution order with the byte size of every activation."""

    nodes: list[Node]
    inputs: list[str]  # graph inputs that are not constants
    outputs: list[str]
    shapes: dict[str, tuple[int, ...]]  # of every tensor, constants included
    nbytes: dict[str, int]  # of every activation
    initializers: set[str] = field(default_factory=set)
    static: bool = False  # shapes inferred, not run: the model declares tensors too large to run


@dataclass
class Buffer:
    name: str
    size: int
    first: int  # index of the node that produces it (0 for graph inputs)
    last: int  # index of the last node that reads it
    offset: int = 0  # placement in the arena


@dataclass
class MemoryPlan:
    """Four activation-memory figures, smallest to largest claim on RAM:
    largest_tensor_bytes ≤ working_set_bytes ≤ peak_bytes ≤ arena_bytes."""

    largest_tensor_bytes: int  # the single largest activation (what SEA's paper reports as activation memory)
    largest_tensor: str
    working_set_bytes: int  # the largest inputs + outputs of one node: a floor for any planner without in-place reuse
    peak_bytes: int  # the most bytes live at once over the execution order
    arena_bytes: int  # a real offset plan (greedy by size, as TFLite Micro plans its arena)
    constant_bytes: int  # of the peak: tensors computed from weights alone (e.g. int8 constants dequantised)
    steps: list[NodeStep]
    buffers: list[Buffer]
    static: bool = False  # planned on inferred shapes, without running the model

    @property
    def fragmentation(self) -> float:
        """How much the arena exceeds the peak live bytes (0 = a perfect plan)."""
        return self.arena_bytes / self.peak_bytes - 1 if self.peak_bytes else 0.0


def example_inputs(session: ort.InferenceSession, batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs matching the model's inputs; symbolic dimensions become `batch`."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for inp in session.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else batch for d in inp.shape]
        dtype = _ORT_TYPES.get(inp.type)
        if dtype is None:
            raise ModelError(f"input '{inp.name}' has unsupported type {inp.type}")
        if np.issubdtype(dtype, np.floating):
            feeds[inp.name] = (0.1 * rng.standard_normal(shape)).astype(dtype)
        else:
            feeds[inp.name] = np.zeros(shape, dtype=dtype)
    return feeds


# Above this many bytes in one tensor, shapes come from ONNX shape inference instead of a run: no edge model has
# such a tensor, and running one could take minutes and gigabytes (a declared [1, 1e9] input: 4.5 min, 11.8 GB).
RUN_TENSOR_LIMIT = 256 * 2**20


def graph_run(model: onnx.ModelProto, name: str, optimise: bool = True, batch: int = 1) -> GraphRun:
    """Every tensor's shape of a loaded model (`name` is what errors call it): statically when the graph declares a
    tensor too large to run, else optimise with onnxruntime (fusions applied) and run once to learn them."""
    static = _static_shapes(model, batch)
    if static is not None and max(static.nbytes.values(), default=0) > RUN_TENSOR_LIMIT:
        return static
    with tempfile.TemporaryDirectory() as tmp:
        graph_path = Path(tmp) / "graph.onnx"
        if optimise:  # the loaded model (its external data inside it) written where onnxruntime saves its graph
            whole = atomic_write(Path(tmp) / "model.onnx", lambda handle: handle.write(model.SerializeToString()))
            create_session(whole, name=name, optimisation="extended", save_optimised=graph_path)
            model = onnx.load(str(graph_path))
        initializers = {t.name for t in model.graph.initializer}
        produced = [out for node in model.graph.node for out in node.output if out]
        existing = {o.name for o in model.graph.output}
        probe = onnx.ModelProto()
        probe.CopyFrom(model)
        probe.graph.output.extend(onnx.ValueInfoProto(name=name) for name in produced if name not in existing)
        session = create_session(probe.SerializeToString(), name=name, optimisation="none")
        try:
            feeds = example_inputs(session, batch)
            names = [o.name for o in session.get_outputs()]
            values = session.run(names, feeds)
        except ModelError:
            raise
        except Exception as err:
            raise ModelError(f"{name}: onnxruntime cannot run the model ({first_line(err)})") from None
    shapes = {name: tuple(np.shape(v)) for name, v in zip(names, values)}
    nbytes = {name: int(np.asarray(v).nbytes) for name, v in zip(names, values)}
    for name, array in feeds.items():
        shapes[name], nbytes[name] = array.shape, array.nbytes
    for tensor in model.graph.initializer:
        shapes[tensor.name] = tuple(tensor.dims)
    return _onnx_run(model, shapes, nbytes, initializers)


def _onnx_run(model: onnx.ModelProto, shapes: dict, nbytes: dict, initializers: set[str],
              static: bool = False) -> GraphRun:
    nodes = [Node(node.name or f"{node.op_type}_{index}", node.op_type, tuple(i for i in node.input if i),
                  tuple(o for o in node.output if o), node_macs(node, shapes), node.op_type in _ALIAS_OPS)
             for index, node in enumerate(model.graph.node)]
    graph = model.graph
    return GraphRun(nodes, [i.name for i in graph.input if i.name not in initializers], [o.name for o in graph.output],
                    shapes, nbytes, initializers, static)


def _static_shapes(model: onnx.ModelProto, batch: int) -> GraphRun | None:
    """Shapes and sizes from ONNX shape inference (symbolic dimensions taken as `batch`), or None when inference
    leaves some tensor's shape or type unknown."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # inference is best effort: unknown ops and custom domains end it
        return None
    graph = inferred.graph
    initializers = {t.name for t in graph.initializer}
    shapes, nbytes = {}, {}
    for info in (*graph.input, *graph.value_info, *graph.output):
        tensor = info.type.tensor_type
        if info.name in initializers or not tensor.HasField("shape") or not tensor.elem_type:
            continue
        shapes[info.name] = tuple(d.dim_value if d.HasField("dim_value") else batch for d in tensor.shape.dim)
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).itemsize
        nbytes[info.name] = math.prod(shapes[info.name]) * itemsize  # Python integers: no shape overflows
    if any(out and out not in shapes for node in graph.node for out in node.output):
        return None
    for tensor in graph.initializer:
        shapes[tensor.name] = tuple(tensor.dims)
    return _onnx_run(inferred, shapes, nbytes, initializers, static=True)


def _buffers(run: GraphRun) -> tuple[dict[str, str], list[Buffer]]:
    """Each tensor's buffer (an alias op's output shares its input's) and each buffer's size and lifetime."""
    buffer_of = {name: name for name in run.inputs}
    for node in run.nodes:
        for out in node.outputs:
            source = node.inputs[0] if node.alias and node.inputs else None
            buffer_of[out] = buffer_of[source] if source in buffer_of else out
    size = {buf: run.nbytes.get(buf, 0) for buf in dict.fromkeys(buffer_of.values())}  # in first-use order
    first = {buf: 0 for buf in size if buf in run.inputs}
    last: dict[str, int] = {}
    for index, node in enumerate(run.nodes):
        for out in node.outputs:
            first.setdefault(buffer_of[out], index)
            last[buffer_of[out]] = max(last.get(buffer_of[out], index), index)
        for inp in node.inputs:
            if inp in buffer_of:
                last[buffer_of[inp]] = max(last.get(buffer_of[inp], index), index)
    for out in run.outputs:
        if out in buffer_of:
            last[buffer_of[out]] = len(run.nodes) - 1
    return buffer_of, [Buffer(b, size[b], first.get(b, 0), last.get(b, first.get(b, 0))) for b in size]


def plan_memory(run: GraphRun) -> MemoryPlan:
    """Peak bytes live over the execution order; weights (initializers) live in flash and are not counted."""
    buffer_of, buffers = _buffers(run)
    size = {b.name: b.size for b in buffers}
    # Tensors computed from weights alone (a DequantizeLinear of an int8 constant, say) hold RAM like activations
    # unless a runtime folds them at load, where they hold it for good: counted, and reported apart.
    constant = set(run.initializers)
    for node in run.nodes:
        if all(i in constant for i in node.inputs):
            constant.update(node.outputs)
    steps, working_set = [], 0
    for index, node in enumerate(run.nodes):
        live = sum(b.size for b in buffers if b.first <= index <= b.last)
        touched = {buffer_of[t] for t in (*node.inputs, *node.outputs) if t in buffer_of}
        working_set = max(working_set, sum(size[b] for b in touched))
        steps.append(NodeStep(index, node.name, node.op_type, live, sum(run.nbytes.get(o, 0) for o in node.outputs),
                              node.macs))
    largest = max(buffers, key=lambda b: b.size) if buffers else Buffer("", 0, 0, 0)
    return MemoryPlan(
        largest_tensor_bytes=largest.size,
        largest_tensor=largest.name,
        working_set_bytes=working_set,
        peak_bytes=max((s.live_bytes for s in steps), default=0),
        arena_bytes=greedy_arena(buffers),
        constant_bytes=sum(b.size for b in buffers if b.name in constant),
        steps=steps,
        buffers=buffers,
        static=run.static,
    )


# TFLite Micro's GreedyMemoryPlanner: largest first, and among equal sizes the one used last first, then the one
# created last (this order reproduced TFLM's planned head byte for byte on 40 models, front-end graphs included;
# first use instead of last use missed by up to 22 %).
TFLM_ORDER = lambda b: (-b.size, -b.last, -b.first)  # noqa: E731

_PLACEMENT_ORDERS = {
    "size": TFLM_ORDER,
    "size x lifetime": lambda b: (-b.size * (b.last - b.first + 1), b.first),
    "first use": lambda b: (b.first, -b.size),
    "lifetime": lambda b: (-(b.last - b.first), -b.size),
}


def _place(buffers: list[Buffer], order, alignment: int = 16) -> int:
    """Place buffers in `order`, each at the lowest offset that overlaps no placed buffer whose lifetime overlaps
    its own, sizes rounded up to `alignment` as TFLM does. Returns the arena size and sets each offset."""
    placed: list[Buffer] = []
    for buf in sorted(buffers, key=order):
        conflicts = sorted((p for p in placed if p.first <= buf.last and buf.first <= p.last), key=lambda p: p.offset)
        offset = 0
        for other in conflicts:
            if offset + aligned(buf.size, alignment) <= other.offset:
                break  # fits in the gap below this buffer
            offset = max(offset, other.offset + aligned(other.size, alignment))
        buf.offset = offset
        placed.append(buf)
    return max((b.offset + aligned(b.size, alignment) for b in buffers), default=0)


def aligned(size: int, alignment: int = 16) -> int:
    """`size` rounded up to a multiple of `alignment` (TFLM aligns every buffer to 16 bytes)."""
    return -(-size // alignment) * alignment


def tflm_arena_bytes(buffers: list[Buffer]) -> int:
    """The arena TFLM's own planner gives these buffers (their offsets left as they were)."""
    return _place([replace(b) for b in buffers], TFLM_ORDER)


def greedy_arena(buffers: list[Buffer], alignment: int = 16) -> int:
    """The smallest arena of first-fit greedy plans over a few placement orders, starting with TFLite Micro's
    (largest first). Lifetimes that overlap never share bytes, so the result is never below the peak live bytes."""
    best_size, best_offsets = None, None
    for order in _PLACEMENT_ORDERS.values():
        size = _place(buffers, order, alignment)
        if best_size is None or size < best_size:
            best_size, best_offsets = size, [b.offset for b in buffers]
    for buf, offset in zip(buffers, best_offsets or []):
        buf.offset = offset
    return best_size or 0
