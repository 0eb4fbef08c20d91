"""Activation memory of a model's graph, whichever format it was read from (each format's `graph.py` reads its
files into a `GraphRun`): walk the nodes in execution order, allocating each output when produced and freeing each
tensor after its last use, then place the buffers in an arena as TFLite Micro's planner does."""

from __future__ import annotations

from dataclasses import dataclass, field


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
LARGEST_FIRST = lambda b: (-b.size, -b.last, -b.first)  # noqa: E731

_PLACEMENT_ORDERS = {
    "size": LARGEST_FIRST,
    "size x lifetime": lambda b: (-b.size * (b.last - b.first + 1), b.first),
    "first use": lambda b: (b.first, -b.size),
    "lifetime": lambda b: (-(b.last - b.first), -b.size),
}


def place(buffers: list[Buffer], order, alignment: int = 16) -> int:
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


def greedy_arena(buffers: list[Buffer], alignment: int = 16) -> int:
    """The smallest arena of first-fit greedy plans over a few placement orders, starting with TFLite Micro's
    (largest first). Lifetimes that overlap never share bytes, so the result is never below the peak live bytes."""
    best_size, best_offsets = None, None
    for order in _PLACEMENT_ORDERS.values():
        size = place(buffers, order, alignment)
        if best_size is None or size < best_size:
            best_size, best_offsets = size, [b.offset for b in buffers]
    for buf, offset in zip(buffers, best_offsets or []):
        buf.offset = offset
    return best_size or 0
