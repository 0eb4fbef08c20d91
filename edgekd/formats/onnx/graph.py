"""An ONNX model read for the profiler: load with validation, parameters, storage, one MAC rule per op type, and
the graph onnxruntime runs, with real shapes.

The raw exported graph overestimates memory (1.6x FP32, 4-8x QDQ: unfused Q/DQ pairs, BN and activation nodes);
what a runtime allocates is closer to the graph after fusions. So: let onnxruntime optimise the model and save it,
and run that graph once with every intermediate exposed to record true shapes and dtypes.
"""

from __future__ import annotations

import math
import tempfile
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import onnxruntime as ort

from edgekd.errors import ModelError, first_line
from edgekd.files import atomic_write
from edgekd.formats.base import FileGraph
from edgekd.formats.memory import GraphRun, Node
from edgekd.formats.onnx.session import create_session

# Inputs of these ops at positions ≥ 1 are quantisation scales/zero points, not parameters.
_QUANT_OPS = {"QuantizeLinear", "DequantizeLinear"}
_FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.DOUBLE}
_QUANT_TYPES = {onnx.TensorProto.INT8, onnx.TensorProto.UINT8, onnx.TensorProto.INT4, onnx.TensorProto.UINT4}
# Ops whose output is a view of their first input: no new buffer, the input lives as long as the view.
_ALIAS_OPS = {"Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity"}
_ORT_TYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8, "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


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


def read_onnx(path: Path, raw: bool = False) -> FileGraph:
    """The model's graph for the profiler: as onnxruntime optimises it (fusions applied), or as exported (`raw`)."""
    model = load_model(path)
    run = graph_run(model, str(path), optimise=not raw)
    frontend_params, frontend_bytes = frontend_constants(model)
    return FileGraph(run, "static" if run.static else "raw" if raw else "optimised", bytes_by_dtype(model),
                     weight_dtypes(model), parameter_count(model), frontend_params, frontend_bytes,
                     storage_bytes(path), zipped_bytes(path), knowledge_base_constants(model)[1],
                     [{"node": n.name, "op": n.op_type} for n in model.graph.node])


def weight_dtypes(model: onnx.ModelProto) -> set[str]:
    """Element types of the model's weight tensors (quantisation scales and zero points, shapes, int32 biases and
    scalar constants aside: a scalar follows the activation type, and converters map uint8 and int8 activations
    onto each other, so activation types are not checked)."""
    return {onnx.helper.tensor_dtype_to_np_dtype(t.data_type).name for t in weight_initializers(model) if t.dims}


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
