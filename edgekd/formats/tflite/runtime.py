"""The TFLM interpreter (PyPI `tflite-micro`: TFLM's C++ with its x86 reference kernels) on the host: a model's
outputs, and the arena its allocator plans, as a microcontroller would run it."""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import re
import signal
import sys
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekd.errors import EdgekdError, first_line
from edgekd.extras import install_command, require
from edgekd.formats.tflite.validate import read_model
from edgekd.units import format_bytes

ARENA_LIMIT = 64 << 20  # the largest arena tried: bigger than any microcontroller's RAM


@dataclass(frozen=True)
class TflmArena:
    """TFLM's own figures for a model: the head (tensors planned by lifetime, what edgekd's arena plan predicts),
    the tail (persistent buffers: kernel state, tensor structs, quantisation data) and their total, the
    `arena_size` a board must give it."""

    head: int
    tail: int
    total: int
    measured: bool = True  # by TFLM's allocator on this host; False: edgekd's prediction from an ONNX graph


def run_tflite(path: Path, inputs: np.ndarray) -> np.ndarray:
    """The model's float output for each row of `inputs` (float; quantised to an int8 input with the file's scale
    and zero point, and dequantised back), one window per invocation as on the device."""
    return run_tflite_raw(path, inputs).dequantised()


@dataclass(frozen=True)
class TflmRun:
    """A model run in TFLM's interpreter as a device runs it: each row's input as the model takes it (quantised with
    the file's scale and zero point), its raw output, and the tensors' details."""

    inputs: np.ndarray
    outputs: np.ndarray
    input_details: dict
    output_details: dict

    def dequantised(self) -> np.ndarray:
        return dequantise(self.outputs, self.output_details)


def run_tflite_raw(path: Path, inputs: np.ndarray) -> TflmRun:
    interpreter = _interpreter(path)
    given, produced = interpreter.get_input_details(0), interpreter.get_output_details(0)
    taken, outputs = _quantise(inputs, given), []
    for row in taken:
        interpreter.set_input(row[None], 0)
        interpreter.invoke()
        outputs.append(interpreter.get_output(0)[0].copy())
    return TflmRun(taken, np.stack(outputs), given, produced)


def tflm_details(path: Path) -> dict:
    """TFLM's details of the model's input and output tensors (dtype, shape, quantisation)."""
    interpreter = _interpreter(path)
    return {"input": interpreter.get_input_details(0), "output": interpreter.get_output_details(0)}


def tflm_arena_isolated(path: Path) -> TflmArena:
    """`tflm_arena` of any file, planned in a child process: a file that passed edgekd's checks may still hold what
    TFLM's C++ kernels crash on, and a crash must be one line, not this process dying."""
    return _in_child(lambda: tflm_arena(path), path)


def tflm_arena(path: Path) -> TflmArena:
    """What TFLM's recording allocator reports after planning `path` (printed from C++ to stderr, so read at the file
    descriptor), in this process: for the files edgekd writes."""
    interpreter = _interpreter(path)
    with _captured(2) as printed:
        interpreter.print_allocations()
    figures = dict(re.findall(r"Arena allocation (head|tail|total) (\d+) bytes", printed()))
    if set(figures) != {"head", "tail", "total"}:
        raise EdgekdError(f"{path}: TFLM printed no arena figures; the tflite-micro build may differ from the pinned "
                          f"one ({install_command('tflite')})")
    return TflmArena(*(int(figures[key]) for key in ("head", "tail", "total")))


def _in_child(work: Callable[[], object], path: Path):
    """`work()` run in a forked child, its result (or its EdgekdError) handed back through a pipe; a child killed by
    a signal is the file's fault, said in one line."""
    require("tflite_micro", "running a .tflite", "tflite")  # imported here, before the fork, once
    sys.stdout.flush()
    sys.stderr.flush()
    readable, writable = os.pipe()
    with warnings.catch_warnings():  # JAX (imported by the exporter) warns of threads: the child runs TFLM alone
        warnings.simplefilter("ignore", RuntimeWarning)
        child = os.fork()
    if child == 0:  # pragma: no cover - the child's lines run, but coverage is not collected in it
        os.close(readable)
        try:
            outcome = ("ok", work())
        except EdgekdError as err:
            outcome = ("error", str(err))
        except BaseException as err:  # noqa: BLE001 - a bug: handed to the parent, which raises it
            outcome = ("bug", f"{type(err).__name__}: {err}")
        with os.fdopen(writable, "wb") as pipe:
            pickle.dump(outcome, pipe)
        os._exit(0)
    os.close(writable)
    status = None
    try:
        with os.fdopen(readable, "rb") as pipe:
            answer = pipe.read()
        _, status = os.waitpid(child, 0)
    finally:
        if status is None:  # interrupted while it ran: the child goes too
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
    if os.WIFSIGNALED(status):
        raise EdgekdError(f"{path}: TFLM crashed loading it ({signal.Signals(os.WTERMSIG(status)).name}); the file "
                          "holds what its kernels cannot run: export it again")
    kind, value = pickle.loads(answer)
    if kind == "error":
        raise EdgekdError(value)
    if kind == "bug":
        raise RuntimeError(value)
    return value


def _interpreter(path: Path):
    runtime = require("tflite_micro", "running a .tflite", "tflite").runtime
    read_model(path, "running a .tflite")  # no file reaches TFLM's C++ unchecked: it trusts every index
    with _captured(2) as printed:
        try:
            return runtime.Interpreter.from_file(str(path), arena_size=ARENA_LIMIT)
        except Exception as err:  # noqa: BLE001 - its Python layer parses the flatbuffer first (struct.error, ...)
            failure = first_line(err) or type(err).__name__
    said = printed()
    missing = sorted(set(re.findall(r"Didn't find op for builtin opcode '(\w+)'", said)))
    if missing:
        raise EdgekdError(f"{path}: TFLM has no kernel for {', '.join(missing)}; export a student whose ops it has "
                          f"(`edgekd students` lists the formats each family exports to)")
    if "Failed to resize buffer" in said or "Failed to allocate" in said:
        raise EdgekdError(f"{path}: the model needs more than the {format_bytes(ARENA_LIMIT)} arena tried (more RAM "
                          f"than any microcontroller has); choose a smaller student")
    lines = [line.strip() for line in said.splitlines() if line.strip()]
    raise EdgekdError(f"{path}: TFLM cannot load it ({'; '.join(lines[:2]) or failure}); is it a .tflite edgekd wrote? "
                      f"export it again")


@contextlib.contextmanager
def _captured(fd: int):
    """What C++ code writes to file descriptor `fd` (1: stdout, 2: stderr) meanwhile; `printed()` reads it once the
    block has ended."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), fd)
        text: list[str] = []
        try:
            yield lambda: "".join(text)
        finally:
            ctypes.CDLL(None).fflush(None)  # C stdio buffers what it writes to a file
            os.dup2(saved, fd)
            os.close(saved)
            sink.seek(0)
            text.append(sink.read().decode(errors="replace"))


def _quantise(rows: np.ndarray, details: dict) -> np.ndarray:
    if details["dtype"] == np.float32:
        return rows.astype(np.float32)
    scale, zero = _scale_and_zero_point(details)
    limits = np.iinfo(details["dtype"])
    return np.clip(np.round(rows / scale) + zero, limits.min, limits.max).astype(details["dtype"])


def dequantise(values: np.ndarray, details: dict) -> np.ndarray:
    """Raw tensor values as floats, with the tensor's scale and zero point (float tensors as they are)."""
    if details["dtype"] == np.float32:
        return values
    scale, zero = _scale_and_zero_point(details)
    return ((values.astype(np.float32) - zero) * scale).astype(np.float32)


def _scale_and_zero_point(details: dict) -> tuple[float, int]:
    """Of a per-tensor quantised input or output."""
    parameters = details["quantization_parameters"]
    return parameters["scales"][0], parameters["zero_points"][0]
