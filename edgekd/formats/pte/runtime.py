"""ExecuTorch's runtime on the host: a program read with its own schema, the memory plan its compiler wrote into it,
and its outputs, one window per call as a device runs it."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from edgekd.errors import EdgekdError, first_line
from edgekd.extras import require


def require_executorch(module: str, needed_for: str = "--format pte"):
    # torchao (executorch imports it) warns that its CUDA kernel libraries do not load on a CPU-only machine, and torch
    # that torchao registers an Enum the old way: noise to a user who asked for a .pte
    for name in ("torchao", "torch.utils._pytree"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return require(module, needed_for, "executorch")


def read_program(path: Path):
    """The program `path` holds, as ExecuTorch's own schema reads it."""
    serialised = require_executorch("executorch.exir._serialize._program", f"reading {path}")
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
    planned = [int(size) for size in program.execution_plan[0].non_const_buffer_sizes[1:]]
    if any(size < 0 for size in planned):
        raise EdgekdError(f"{path}: not a valid ExecuTorch program (a negative size: a planned buffer); export it "
                          "again")
    return planned


def run_pte(path: Path, inputs: np.ndarray) -> np.ndarray:
    """The program's output for each row of `inputs`, one window per call."""
    runtime = require_executorch("executorch.runtime", f"running {path}").Runtime.get()
    try:
        method = runtime.load_program(str(path)).load_method("forward")
    except Exception as err:  # noqa: BLE001 - the runtime raises RuntimeError with an error code
        raise EdgekdError(f"{path}: ExecuTorch cannot load it ({first_line(err)}); export it again") from None
    return np.stack([method.execute([torch.from_numpy(row[None]).contiguous()])[0].numpy()[0] for row in inputs])
