"""`.pte` as `edgekd export --format pte` writes it (portable FP32 gated in ExecuTorch's runtime, and Cortex-M INT8
gated through the Cortex-M operators' reference kernels) and `edgekd profile` reads it (its kernel calls, and the
buffers its compiler planned, written in the program)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgekd.formats.base import (
    ExportJob,
    FileGraph,
    Format,
    RuntimeMemory,
    refuse_host_latency,
)
from edgekd.formats.pte.export import convert_pte, quantize_pte
from edgekd.formats.pte.graph import read_pte
from edgekd.formats.pte.runtime import pte_plan, run_pte


class PteFormat(Format):
    name = "pte"

    def convert(self, module: nn.Module, example: torch.Tensor, path: Path) -> Path:
        return convert_pte(module, example, path)

    def run(self, path: Path, inputs: np.ndarray) -> np.ndarray:
        return run_pte(path, inputs)

    def read(self, path: Path, raw: bool = False) -> FileGraph:
        return read_pte(path)

    def memory(self, path: Path, own: bool = False) -> RuntimeMemory:
        planned = pte_plan(path)
        return RuntimeMemory("executorch_plan", planned, sum(planned), "ExecuTorch's planned buffers, from the program",
                             "ExecuTorch planned buffers (its compiler's plan)", detail="ExecuTorch's memory plan")

    def check_profile(self, path: Path, runtime: str | None, device: str | None,
                      max_latency_ms: float | None) -> None:
        refuse_host_latency(path, max_latency_ms)

    def export(self, job: ExportJob) -> None:
        """student.pte (portable FP32, front-end placed as --frontend says) and student.int8.pte (ExecuTorch's
        Cortex-M flow, front-end outside as for the INT8 .tflite), each with the memory plan its compiler wrote."""
        fp32 = convert_pte(job.module, job.example, job.stage / "student.pte")
        job.add(fp32, self.scored(job, fp32, "fp32", job.gate.inputs))
        if job.options.int8 == "none":
            return
        network_calib, network_held_out = job.network_inputs()
        network = job.network()
        int8 = job.stage / "student.int8.pte"
        run_int8 = quantize_pte(network, network_calib, int8, job.options.cortex_m)
        variant = job.gate.score(int8, "int8", run_int8(network_held_out))  # no host kernels: the lowered program
        variant.memory = self.memory(int8)
        job.add(int8, variant)
        job.notes.append(f"student.int8.pte is for a Cortex-{job.options.cortex_m} (CMSIS-NN operators): it takes "
                         "the log-mel as export.json's metadata.frontend says, and runs only in an ExecuTorch runtime "
                         "built with the Cortex-M kernels")
