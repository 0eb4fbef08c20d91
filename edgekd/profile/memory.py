"""Activation memory of an ONNX model, planned over onnxruntime's optimised graph with real shapes.

The raw exported graph overestimates memory (1.6x FP32, 4-8x QDQ: unfused Q/DQ pairs, BN and activation nodes);
what a runtime allocates is closer to the graph after fusions. So: let onnxruntime optimise the model and save it,
run that graph once with every intermediate exposed to record true shapes and dtypes, then walk the nodes in
execution order, allocating each output when produced and freeing each tensor after its last use.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from edgekd.errors import ModelError
from edgekd.profile.graph import node_macs

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


@dataclass
class GraphRun:
    """One optimised graph with the real shape of every tensor."""

    model: onnx.ModelProto
    shapes: dict[str, tuple[int, ...]]
    nbytes: dict[str, int]
    initializers: set[str] = field(default_factory=set)


@dataclass
class MemoryPlan:
    peak_bytes: int
    largest_tensor_bytes: int
    largest_tensor: str
    steps: list[NodeStep]


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


def optimised_graph_run(model_path: Path, optimise: bool = True, batch: int = 1) -> GraphRun:
    """Optimise with onnxruntime (fusions applied), then run once to learn every tensor's shape."""
    with tempfile.TemporaryDirectory() as tmp:
        graph_path = Path(tmp) / "graph.onnx"
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if optimise:
            # EXTENDED fuses (Conv+BN+act, QDQ→QLinear*) but keeps the portable layout; ALL would add
            # x86-only NCHWc reorders that no edge runtime has.
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
            options.optimized_model_filepath = str(graph_path)
            try:
                ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
            except Exception as err:
                raise ModelError(f"{model_path}: onnxruntime cannot load the model ({_first_line(err)})") from None
            model = onnx.load(str(graph_path))
        else:
            model = onnx.load(str(model_path))
        initializers = {t.name for t in model.graph.initializer}
        produced = [out for node in model.graph.node for out in node.output if out]
        existing = {o.name for o in model.graph.output}
        probe = onnx.ModelProto()
        probe.CopyFrom(model)
        probe.graph.output.extend(onnx.ValueInfoProto(name=name) for name in produced if name not in existing)
        run_options = ort.SessionOptions()
        run_options.log_severity_level = 3
        run_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            session = ort.InferenceSession(probe.SerializeToString(), run_options, providers=["CPUExecutionProvider"])
            feeds = example_inputs(session, batch)
            names = [o.name for o in session.get_outputs()]
            values = session.run(names, feeds)
        except ModelError:
            raise
        except Exception as err:
            raise ModelError(f"{model_path}: onnxruntime cannot run the model ({_first_line(err)})") from None
    shapes = {name: tuple(np.shape(v)) for name, v in zip(names, values)}
    nbytes = {name: int(np.asarray(v).nbytes) for name, v in zip(names, values)}
    for name, array in feeds.items():
        shapes[name], nbytes[name] = array.shape, array.nbytes
    for tensor in model.graph.initializer:
        shapes[tensor.name] = tuple(tensor.dims)
    return GraphRun(model, shapes, nbytes, initializers)


def plan_memory(run: GraphRun) -> MemoryPlan:
    """Peak bytes live over the execution order; weights (initializers) live in flash and are not counted."""
    graph = run.model.graph
    nodes = list(graph.node)
    graph_outputs = {o.name for o in graph.output}
    # Buffers: an alias op's output shares its input's buffer.
    buffer_of: dict[str, str] = {}
    for inp in graph.input:
        if inp.name not in run.initializers:
            buffer_of[inp.name] = inp.name
    for node in nodes:
        for out in node.output:
            if not out:
                continue
            source = node.input[0] if node.op_type in _ALIAS_OPS and node.input else None
            buffer_of[out] = buffer_of.get(source, out) if source in buffer_of else out
    size = {buf: run.nbytes.get(buf, 0) for buf in set(buffer_of.values())}
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for buf in size:
        if buf in {i.name for i in graph.input}:
            first[buf] = 0
    for index, node in enumerate(nodes):
        for out in node.output:
            if out in buffer_of:
                first.setdefault(buffer_of[out], index)
                last[buffer_of[out]] = max(last.get(buffer_of[out], index), index)
        for inp in node.input:
            if inp in buffer_of:
                last[buffer_of[inp]] = max(last.get(buffer_of[inp], index), index)
    for out in graph_outputs:
        if out in buffer_of:
            last[buffer_of[out]] = len(nodes) - 1
    steps = []
    for index, node in enumerate(nodes):
        live = sum(size[b] for b in size if first.get(b, 0) <= index <= last.get(b, -1))
        steps.append(
            NodeStep(index, node.name or f"{node.op_type}_{index}", node.op_type, live,
                     sum(run.nbytes.get(o, 0) for o in node.output if o), node_macs(node, run.shapes))
        )
    largest = max(size, key=size.get) if size else ""
    return MemoryPlan(
        peak_bytes=max((s.live_bytes for s in steps), default=0),
        largest_tensor_bytes=size.get(largest, 0),
        largest_tensor=largest,
        steps=steps,
    )


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:200]
