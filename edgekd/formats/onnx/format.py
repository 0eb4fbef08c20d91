"""ONNX as `edgekd export --format onnx` writes it (FP32; INT8 static, with its mixed-precision fallback, or dynamic;
FP16; each gated in onnxruntime) and `edgekd profile` reads it (the graph onnxruntime optimises, timed on this
host)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from edgekd.formats.base import ExportJob, FileGraph, Format, Variant
from edgekd.formats.onnx.export import export_onnx
from edgekd.formats.onnx.graph import read_onnx
from edgekd.formats.onnx.quantize import (
    convert_fp16,
    mixed_precision_fallback,
    quantize_dynamic,
    quantize_static,
)
from edgekd.formats.onnx.runtime import measure_latency, measure_session_memory
from edgekd.formats.onnx.session import run_onnx


class OnnxFormat(Format):
    name = "onnx"
    operators = None  # onnxruntime runs any op; TensorRT's parser covers the standard set exported embedders use

    def convert(self, module: nn.Module, example: torch.Tensor, path: Path) -> Path:
        return export_onnx(module, example, path)

    def run(self, path: Path, inputs: np.ndarray) -> np.ndarray:
        return run_onnx(path, inputs)

    def read(self, path: Path, raw: bool = False) -> FileGraph:
        return read_onnx(path, raw)

    def latency(self, path: Path, threads: int, runs: int) -> tuple[dict | None, int | None]:
        return measure_latency(path, threads, runs=runs), measure_session_memory(path, threads)

    def export(self, job: ExportJob) -> None:
        fp32 = export_onnx(job.module, job.example, job.stage / "student.onnx", job.metadata, job.input_name,
                           opset=job.options.opset)
        job.add(fp32, self.scored(job, fp32, "fp32", job.gate.inputs))
        self._integer(fp32, job)
        if job.options.fp16:
            path = convert_fp16(fp32, job.stage / "student.fp16.onnx")
            job.add(path, self.scored(job, path, "fp16", job.gate.inputs))

    def _integer(self, fp32: Path, job: ExportJob) -> None:
        if job.options.int8 == "static":
            self._static_int8(fp32, job.stage / "student.int8.onnx", job)
            if job.options.int16x8:  # int16 QDQ: onnxruntime runs it (contrib Q/DQ below opset 21)
                path = quantize_static(fp32, job.stage / "student.int16x8.onnx", job.calibration,
                                       job.options.calib_method, "int16",
                                       frontend_constants=job.options.frontend_constants)
                job.add(path, self._int8(job, path, "int16x8"))
        elif job.options.int8 == "dynamic":
            if any(n.op_type == "Conv" for n in onnx.load(str(fp32)).graph.node):
                job.notes.append("dynamic INT8 on a convolutional student: measured 4-6x slower than FP32 for CNNs "
                                 "in onnxruntime; prefer --int8 static")
            path = quantize_dynamic(fp32, job.stage / "student.int8-dynamic.onnx")
            job.add(path, self.scored(job, path, "int8-dynamic", job.gate.inputs))

    def _static_int8(self, fp32: Path, out: Path, job: ExportJob) -> None:
        options, calibration, budget = job.options, job.calibration, job.budget
        path = quantize_static(fp32, out, calibration, options.calib_method, options.activations,
                               frontend_constants=options.frontend_constants)
        variant = self._int8(job, path)
        if not variant.passed and options.fallback:
            def passes(candidate: Path) -> bool:  # the gate, and with --device the device's budget
                return not (budget and self.over_budget(candidate, budget)) and self._int8(job, candidate).passed

            within = f" within {budget.device}'s budget" if budget else ""
            with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
                found = mixed_precision_fallback(fp32, Path(tmp) / out.name, calibration, passes,
                                                 options.calib_method, options.activations, options.frontend_constants)
                if found:
                    job.notes.append(f"INT8 missed the gate ({'; '.join(variant.missed)}); the mixed-precision "
                                     f"fallback keeps {len(found[1])} layer(s) in FP32{within}: {', '.join(found[1])}")
                    job.fp32_layers = found[1]
                    found[0].replace(out)
                    variant = self._int8(job, out, "int8+fp32 fallback")
                else:
                    job.notes.append(f"INT8 missed the gate ({'; '.join(variant.missed)}), and no file with layers "
                                     f"kept in FP32 passed it{within}")
        job.add(out, variant)

    def _int8(self, job: ExportJob, path: Path, precision: str = "int8") -> Variant:
        return self.scored(job, path, precision, job.gate.inputs)
