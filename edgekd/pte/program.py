"""PyTorch → ExecuTorch `.pte` through torch.export and ExecuTorch's edge compiler, with the memory plan made at
export:
- portable FP32, run by ExecuTorch's runtime on the host, one window per call as a device runs it;
- INT8 for Cortex-M (ExecuTorch's Cortex-M flow: PT2E quantisation, then CMSIS-NN operators). Those operators have
  no kernels in the host runtime, so the gate runs the lowered program through their reference implementations
  (ExecuTorch's own, with CMSIS-NN's requantisation arithmetic) before it is serialised."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgekd.errors import EdgekdError, first_line
from edgekd.extras import require
from edgekd.files import atomic_write

NEEDED_FOR_INT8 = "--format pte with INT8 (ExecuTorch's Cortex-M flow)"


def _require(module: str, needed_for: str = "--format pte"):
    # torchao (executorch imports it) warns that its CUDA kernel libraries do not load on a CPU-only machine, and torch
    # that torchao registers an Enum the old way: noise to a user who asked for a .pte
    for name in ("torchao", "torch.utils._pytree"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return require(module, needed_for, "executorch")


def convert_pte(module: nn.Module, example: torch.Tensor, path: Path) -> Path:
    """A portable FP32 `.pte` of `module` for inputs shaped like `example` (batch 1)."""
    exir = _require("executorch.exir")
    program = exir.to_edge_transform_and_lower(torch.export.export(module.eval(), (example[:1],))).to_executorch()
    return atomic_write(path, lambda handle: handle.write(program.buffer))


def quantize_pte(network: nn.Module, calibration: np.ndarray, path: Path,
                 cpu: str) -> Callable[[np.ndarray], np.ndarray]:
    """An INT8 `.pte` of `network` (the student after its front-end) for a Cortex-M `cpu` (the CMSIS-NN kernels and
    scratch buffers it gets), activation ranges from running `calibration` (rows shaped like its input) through it;
    returns what runs the lowered program on rows of inputs, for the gate."""
    quantizer = _require("executorch.backends.cortex_m.quantizer.quantizer", NEEDED_FOR_INT8).CortexMQuantizer
    passes = _require("executorch.backends.cortex_m.passes.cortex_m_pass_manager", NEEDED_FOR_INT8).CortexMPassManager
    target = _require("executorch.backends.cortex_m.target_config", NEEDED_FOR_INT8)
    edge_config = _require("executorch.backends.cortex_m.edge_compile_config", NEEDED_FOR_INT8)
    pt2e = _require("torchao.quantization.pt2e.quantize_pt2e", NEEDED_FOR_INT8)
    exir = _require("executorch.exir", NEEDED_FOR_INT8)
    # channels-last weights, or the flow leaves the convolutions FP32; on a copy, so the caller's student is untouched
    network = copy.deepcopy(network).eval().to(memory_format=torch.channels_last)
    rows = torch.from_numpy(np.ascontiguousarray(calibration, np.float32))
    with torch.no_grad():
        # the graph module torch.export gives calls a guard module that ExecuTorch's passes refuse
        prepared = pt2e.prepare_pt2e(torch.export.export(network, (rows[:1],), strict=True).module(check_guards=False),
                                     quantizer())
        for row in rows:
            prepared(row[None])
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


def read_program(path: Path):
    """The program `path` holds, as ExecuTorch's own schema reads it."""
    serialised = _require("executorch.exir._serialize._program", f"reading {path}")
    try:
        program = serialised.deserialize_pte_binary(path.read_bytes()).program
        program.execution_plan[0].chains[0].instructions  # noqa: B018 - a program with nothing to run is corrupt
        return program
    except Exception as err:  # noqa: BLE001 - a corrupt flatbuffer fails anywhere in the reader
        raise EdgekdError(f"{path}: not a readable ExecuTorch program ({first_line(err) or type(err).__name__}); "
                          f"export it again") from None


def pte_plan(path: Path, program=None) -> list[int]:
    """The sizes of the memory-planned buffers ExecuTorch's compiler wrote into the program (what a device must
    give the method besides the constants; the runtime's reserved first entry left out)."""
    program = program or read_program(path)
    return [int(size) for size in program.execution_plan[0].non_const_buffer_sizes[1:]]


def run_pte(path: Path, inputs: np.ndarray) -> np.ndarray:
    """The program's output for each row of `inputs`, one window per call."""
    runtime = _require("executorch.runtime", f"running {path}").Runtime.get()
    try:
        method = runtime.load_program(str(path)).load_method("forward")
    except Exception as err:  # noqa: BLE001 - the runtime raises RuntimeError with an error code
        raise EdgekdError(f"{path}: ExecuTorch cannot load it ({first_line(err)}); export it again") from None
    return np.stack([method.execute([torch.from_numpy(row[None]).contiguous()])[0].numpy()[0] for row in inputs])
