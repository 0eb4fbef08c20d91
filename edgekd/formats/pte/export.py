"""PyTorch → ExecuTorch `.pte` through torch.export and ExecuTorch's edge compiler, with the memory plan made at
export:
- portable FP32, run by ExecuTorch's runtime on the host, one window per call as a device runs it;
- INT8 for Cortex-M (ExecuTorch's Cortex-M flow: PT2E quantisation, then CMSIS-NN operators). Those operators have
  no kernels in the host runtime, so the gate runs the lowered program through their reference implementations
  (ExecuTorch's own, with CMSIS-NN's requantisation arithmetic) before it is serialised."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from torch import nn

from edgekd.files import atomic_write
from edgekd.formats.pte.runtime import require_executorch

NEEDED_FOR_INT8 = "--format pte with INT8 (ExecuTorch's Cortex-M flow)"


def convert_pte(module: nn.Module, example: torch.Tensor, path: Path) -> Path:
    """A portable FP32 `.pte` of `module` for inputs shaped like `example` (batch 1)."""
    exir = require_executorch("executorch.exir")
    program = exir.to_edge_transform_and_lower(torch.export.export(module.eval(), (example[:1],))).to_executorch()
    return atomic_write(path, lambda handle: handle.write(program.buffer))


def quantize_pte(network: nn.Module, calibration: np.ndarray, path: Path,
                 cpu: str) -> Callable[[np.ndarray], np.ndarray]:
    """An INT8 `.pte` of `network` (the student after its front-end) for a Cortex-M `cpu` (the CMSIS-NN kernels and
    scratch buffers it gets), activation ranges from running `calibration` (rows shaped like its input) through it;
    returns what runs the lowered program on rows of inputs, for the gate."""
    quantizer = require_executorch("executorch.backends.cortex_m.quantizer.quantizer", NEEDED_FOR_INT8).CortexMQuantizer
    passes = require_executorch("executorch.backends.cortex_m.passes.cortex_m_pass_manager", NEEDED_FOR_INT8).CortexMPassManager
    target = require_executorch("executorch.backends.cortex_m.target_config", NEEDED_FOR_INT8)
    edge_config = require_executorch("executorch.backends.cortex_m.edge_compile_config", NEEDED_FOR_INT8)
    pt2e = require_executorch("torchao.quantization.pt2e.quantize_pt2e", NEEDED_FOR_INT8)
    exir = require_executorch("executorch.exir", NEEDED_FOR_INT8)
    # channels-last weights, or the flow leaves the convolutions FP32; on a copy, so the caller's student is untouched
    network = copy.deepcopy(network).eval().to(memory_format=torch.channels_last)
    rows = torch.from_numpy(np.ascontiguousarray(calibration, np.float32))
    with torch.no_grad():
        # the graph module torch.export gives calls a guard module that ExecuTorch's passes refuse
        prepared = pt2e.prepare_pt2e(torch.export.export(network, (rows[:1],), strict=True).module(check_guards=False),
                                     quantizer())
        for row in rows:
            prepared(row[None])
        # convert_pt2e looks for QAT's conv+bn patterns whenever any BatchNorm is left (the students' input norm
        # follows no convolution): 96 pattern exports, 2/3 of the whole flow, that cannot match a PTQ graph
        with mock.patch.object(pt2e, "_fold_conv_bn_qat", lambda graph: graph):
            quantised = pt2e.convert_pt2e(prepared)
    edge = exir.to_edge(torch.export.export(quantised, (rows[:1],), strict=True),
                        compile_config=edge_config.cortex_m_edge_compile_config())
    manager = passes(edge.exported_program(), passes.pass_list,
                     target_config=target.CortexMTargetConfig(cpu=getattr(target.CortexM, cpu)))
    edge._edge_programs["forward"] = manager.transform()  # noqa: SLF001 - as ExecuTorch's own Cortex-M tester does
    lowered = edge.exported_program().module()  # before to_executorch, which swaps in out-variants without host kernels
    atomic_write(path, lambda handle: handle.write(edge.to_executorch().buffer))

    def run(inputs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return np.stack([lowered(torch.from_numpy(np.ascontiguousarray(row[None], np.float32)))[0].numpy()
                             for row in inputs])
    return run
