"""`.tflite` as `edgekd export --format tflite` writes it (FP32 and full-integer INT8, each gated in the TFLM
interpreter with TFLM's own arena) and `edgekd profile` reads it (its flatbuffer, and the arena TFLM's allocator
plans on this host); devices running TFLite Micro get their arena predicted from an ONNX graph too."""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgekd.errors import EdgekdError
from edgekd.formats.base import (
    ExportJob,
    FileGraph,
    Format,
    RuntimeMemory,
    Variant,
    refuse_host_latency,
)
from edgekd.formats.memory import GraphRun
from edgekd.formats.registry import RUNTIMES
from edgekd.formats.tflite.arena import predict_tflm_arena
from edgekd.formats.tflite.export import TfliteQuantizer, convert_tflite
from edgekd.formats.tflite.graph import read_tflite
from edgekd.formats.tflite.precision import choose_precision
from edgekd.formats.tflite.runtime import (
    TflmArena,
    run_tflite,
    tflm_arena,
    tflm_arena_isolated,
)
from edgekd.students.base import Network

# ONNX ops that converters (onnx2tf, litert-torch) lower to TFLM builtin kernels; QDQ pairs become the quantised
# kernels themselves. A device running TFLM is judged on an ONNX file's ops against this set.
TFLITE_MICRO_OPS = frozenset({
    "Abs", "Add", "AveragePool", "BatchNormalization", "Cast", "Clip", "Concat", "Conv", "ConvTranspose",
    "DepthToSpace", "DequantizeLinear", "Div", "Elu", "Equal", "Exp", "Flatten", "Floor", "Gather", "Gemm",
    "GlobalAveragePool", "GlobalMaxPool", "Greater", "HardSigmoid", "HardSwish", "Identity", "LeakyRelu", "Less",
    "Log", "LogSoftmax", "MatMul", "Max", "MaxPool", "Min", "Mul", "Neg", "PRelu", "Pad", "QuantizeLinear",
    "ReduceMax", "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum", "Relu", "Reshape", "Resize", "Round",
    "Sigmoid", "Sin", "Cos", "Slice", "Softmax", "SpaceToDepth", "Split", "Sqrt", "Squeeze", "Sub", "Tanh",
    "Transpose", "Unsqueeze", "Where",
})


class TfliteFormat(Format):
    name = "tflite"
    operators = TFLITE_MICRO_OPS
    microcontroller = True

    def convert(self, module: nn.Module, example: torch.Tensor, path: Path) -> Path:
        return convert_tflite(module, example, path)

    def run(self, path: Path, inputs: np.ndarray) -> np.ndarray:
        return run_tflite(path, inputs)

    def read(self, path: Path, raw: bool = False) -> FileGraph:
        return read_tflite(path)

    def memory(self, path: Path, own: bool = False) -> RuntimeMemory:
        # ops TFLM lacks and files its kernels crash on end in the child, in one line
        arena = tflm_arena(path) if own else tflm_arena_isolated(path)
        return _arena_memory(arena, "TFLM arena total, measured on this host", "TFLM's arena, measured")

    def predicted_memory(self, run: GraphRun) -> RuntimeMemory:
        return _arena_memory(predict_tflm_arena(run), "TFLM arena total, predicted")

    def check_profile(self, path: Path, runtime: str | None, device: str | None,
                      max_latency_ms: float | None) -> None:
        refuse_host_latency(path, max_latency_ms)
        if runtime is not None and RUNTIMES.get(runtime) != self.name:
            raise EdgekdError(f"{path}: device '{device}' runs {runtime}, which does not load .tflite files; "
                              "profile the .onnx export for it")

    def export(self, job: ExportJob) -> None:
        """student.tflite (FP32, front-end placed as --frontend says) and student.int8.tflite: full integer, with
        the front-end outside it (its input is the int8 log-mel), because a front-end quantised to int8 loses the
        embedding (mean cosine 0.02 on the demo student). When INT8 misses the gate, its layers' precision is chosen
        by fidelity within --device's budget (`precision.py`); --int16x8 adds student.int16x8.tflite."""
        fp32 = convert_tflite(job.module, job.example, job.stage / "student.tflite")
        job.add(fp32, self.scored(job, fp32, "fp32", job.gate.inputs))
        if job.options.int8 == "none":
            return
        network_calib, network_held_out = job.network_inputs()
        with tempfile.TemporaryDirectory(dir=job.stage) as scratch:
            network_fp32 = fp32 if isinstance(job.module, Network) else convert_tflite(
                job.network(), torch.from_numpy(network_calib[:1]), Path(scratch) / "network.tflite")
            quantizer = TfliteQuantizer(network_fp32, network_calib, job.options.int8_output)
            int8 = quantizer.quantize(job.stage / "student.int8.tflite")
            variant = self.scored(job, int8, "int8", network_held_out)
            if not variant.passed and job.options.fallback:
                variant = self._mixed(job, quantizer, int8, variant, network_calib, network_held_out)
            job.add(int8, variant)
            if job.options.int16x8:
                int16 = quantizer.quantize(job.stage / "student.int16x8.tflite", "int16x8")
                job.add(int16, self.scored(job, int16, "int16x8", network_held_out))
        job.notes.append("student.int8.tflite takes the quantised log-mel (its type, scale and zero point in the "
                         "file): compute it on the device as export.json's metadata.frontend says")

    def _mixed(self, job: ExportJob, quantizer: TfliteQuantizer, int8: Path, plain: Variant,
               calibration: np.ndarray, held_out: np.ndarray) -> Variant:
        """The INT8 file's layers at the precision `choose_precision` finds, or plain INT8 if none passes and fits."""
        budget = job.budget
        choice = choose_precision(quantizer, int8, calibration,
                                  lambda path: self.scored(job, path, "int8+mixed", held_out),
                                  (lambda path: self.over_budget(path, budget)) if budget else None)
        within = f" within {budget.device}'s budget" if budget else " (no --device: RAM and flash not judged)"
        if choice.variant is None:
            gated = [tried for tried in choice.tried if tried.mean_cosine is not None]
            best = max(gated, key=lambda tried: tried.mean_cosine, default=None)
            closest = f"; the most faithful that fitted missed it by {', '.join(best.missed)}" if best else ""
            detail = f" ({len(choice.tried) - len(gated)} over it{closest})" if budget else ""
            job.notes.append(f"{int8.name}: INT8 missed the gate ({'; '.join(plain.missed)}) and none of the "
                             f"{len(choice.tried)} layer-precision assignments tried passed it{within}{detail}; "
                             "kept INT8")
            return plain
        job.layer_precision[int8.name] = dict(choice.layers)
        arena = choice.variant.memory.total if choice.variant.memory else None
        job.notes.append(f"{int8.name}: INT8 missed the gate ({'; '.join(plain.missed)}); layer precision chosen by "
                         f"fidelity{within}: {choice.describe()}"
                         + (f", TFLM arena {arena:,} B" if arena else "")
                         + f"; {len(choice.tried)} assignment(s) tried")
        return choice.variant

def _arena_memory(arena: TflmArena, basis: str, detail: str = "") -> RuntimeMemory:
    how = "measured: its allocator on this host" if arena.measured else "predicted"
    return RuntimeMemory("tflm_arena", asdict(arena), arena.total, basis, f"TFLM arena a board must give ({how})",
                         (("  head: planned tensors, scratch", arena.head),
                          ("  tail: persistent (kernel data, tensor structs)", arena.tail)), detail)
