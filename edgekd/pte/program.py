"""PyTorch → ExecuTorch `.pte` through torch.export and ExecuTorch's edge compiler (portable FP32 kernels, the
memory plan made at export), and the program run by ExecuTorch's runtime on the host, one window per call as a
device runs it.

Portable FP32 only for now: ExecuTorch's Cortex-M INT8 flow (CMSIS-NN ops) needs tosa-tools and a channels-last
export, and its ops have no host kernels to gate it with."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgekd.errors import EdgekdError, first_line
from edgekd.extras import require
from edgekd.files import atomic_write


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


def pte_plan(path: Path) -> list[int]:
    """The sizes of the memory-planned buffers ExecuTorch's compiler wrote into the program (what a device must
    give the method besides the constants; the runtime's reserved first entry left out)."""
    serialised = _require("executorch.exir._serialize._program", f"reading {path}")
    try:
        program = serialised.deserialize_pte_binary(path.read_bytes()).program
        return [int(size) for size in program.execution_plan[0].non_const_buffer_sizes[1:]]
    except Exception as err:  # noqa: BLE001 - a corrupt flatbuffer fails anywhere in the reader
        raise EdgekdError(f"{path}: not a readable ExecuTorch program ({first_line(err) or type(err).__name__}); "
                          f"export it again") from None


def run_pte(path: Path, inputs: np.ndarray) -> np.ndarray:
    """The program's output for each row of `inputs`, one window per call."""
    runtime = _require("executorch.runtime", f"running {path}").Runtime.get()
    try:
        method = runtime.load_program(str(path)).load_method("forward")
    except Exception as err:  # noqa: BLE001 - the runtime raises RuntimeError with an error code
        raise EdgekdError(f"{path}: ExecuTorch cannot load it ({first_line(err)}); export it again") from None
    return np.stack([method.execute([torch.from_numpy(row[None]).contiguous()])[0].numpy()[0] for row in inputs])
