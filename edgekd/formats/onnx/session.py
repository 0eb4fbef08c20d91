"""The one way edgekd opens an onnxruntime session: quiet, on the CPU unless asked, with its failure as one line
naming the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from edgekd.errors import ModelError, first_line

# EXTENDED fuses (Conv+BN+act, QDQ→QLinear*) but keeps the portable layout; ALL would add x86-only NCHWc reorders
# that no edge runtime has.
OPTIMISATIONS = {
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "default": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def create_session(model: Path | bytes, name: str | None = None, threads: int | None = None,
                   optimisation: str = "default", save_optimised: Path | None = None,
                   profile_prefix: Path | None = None, gpu: bool = False) -> ort.InferenceSession:
    """A session for a model file or serialised model; `name` is what errors call it (default: the path).
    `threads` pins intra-op threads (inter-op then 1, as a device would run); `save_optimised` writes the graph
    onnxruntime optimised; `profile_prefix` turns on its profiler; `gpu` prefers CUDA when onnxruntime has it."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = OPTIMISATIONS[optimisation]
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if save_optimised is not None:
        options.optimized_model_filepath = str(save_optimised)
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = str(profile_prefix)
    wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"] if gpu else ["CPUExecutionProvider"]
    providers = [p for p in wanted if p in ort.get_available_providers()]
    source = model if isinstance(model, bytes) else str(model)
    try:
        return ort.InferenceSession(source, options, providers=providers)
    except Exception as err:  # onnxruntime raises its own types for invalid graphs, missing ops and bad files
        raise ModelError(f"{name or model}: onnxruntime cannot load the model ({first_line(err)})") from None


def run_onnx(path: Path, audio: np.ndarray, batch: int = 32) -> np.ndarray:
    """The model's first output for every row of its first input, batch by batch."""
    session = create_session(path)
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: audio[i : i + batch]})[0] for i in range(0, len(audio), batch)])
