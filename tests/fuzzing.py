"""Seeded mutations of a runtime's model file, and `edgekd profile` run on each in a forked child, so that a file
that kills the process (a signal) is seen as such instead of ending the test run."""

import contextlib
import io
import json
import os
import sys
from pathlib import Path

import numpy as np

DIMENSIONS = [-5, -1, 0, 1, 2, 3, 7, 64, 65536, 2**31 - 1]


def _index(rng, count: int) -> int:
    """An index that is in range, just out of it, negative, or absurd."""
    return int(rng.choice([-2, -1, 0, count - 1, count, count + 3, 2**31 - 1, int(rng.integers(0, max(count, 1)))]))


def flipped(original: bytes, rng) -> bytes:
    data = bytearray(original)
    for _ in range(rng.integers(1, 9)):
        data[rng.integers(0, len(data))] ^= 1 << int(rng.integers(0, 8))
    return bytes(data)


def mutated_tflite(original: bytes, rng) -> bytes | None:
    """Bytes flipped, the file cut, or 1-3 fields changed through the flatbuffer (indices, shapes, types, buffer data,
    operator codes, quantisation); None when the change cannot be written back."""
    from edgekd.formats.tflite import flatbuffer

    if rng.random() < 0.25:
        return flipped(original, rng)
    if rng.random() < 0.05:
        return original[: rng.integers(0, len(original))]
    model = flatbuffer.unpack(original, "a test")
    graph = model.subgraphs[0]
    for _ in range(rng.integers(1, 4)):
        tensor = graph.tensors[rng.integers(0, len(graph.tensors))]
        op = graph.operators[rng.integers(0, len(graph.operators))]
        change = rng.integers(0, 10)
        if change == 0:
            tensor.buffer = _index(rng, len(model.buffers)) % 2**32
        elif change == 1 and tensor.shape is not None and len(tensor.shape):
            tensor.shape = list(tensor.shape)
            tensor.shape[rng.integers(0, len(tensor.shape))] = int(rng.choice(DIMENSIONS))
        elif change == 2:
            tensor.shape = [int(rng.choice(DIMENSIONS)) for _ in range(rng.integers(0, 6))]
        elif change in (3, 4):
            indices = list(op.inputs if change == 3 else op.outputs)
            indices[rng.integers(0, len(indices))] = _index(rng, len(graph.tensors))
            setattr(op, "inputs" if change == 3 else "outputs", indices)
        elif change == 5:
            op.opcodeIndex = _index(rng, len(model.operatorCodes)) % 2**32
        elif change == 6:
            which = "inputs" if rng.random() < 0.5 else "outputs"
            setattr(graph, which, [_index(rng, len(graph.tensors))])
        elif change == 7:
            tensor.type = int(rng.integers(0, 20))
        elif change == 8:
            buffer = model.buffers[rng.integers(0, len(model.buffers))]
            if buffer.data is not None and len(buffer.data):
                buffer.data = buffer.data[: rng.integers(0, len(buffer.data))]
        else:
            code = model.operatorCodes[rng.integers(0, len(model.operatorCodes))]
            code.builtinCode = int(rng.integers(0, 210))
            code.deprecatedBuiltinCode = min(code.builtinCode, 127)
        if rng.random() < 0.15 and tensor.quantization is not None and tensor.quantization.scale is not None:
            tensor.quantization.scale = list(tensor.quantization.scale)[: rng.integers(0, 3)]
    try:
        return flatbuffer.pack(model, "a test")
    except Exception:  # noqa: BLE001 - a value the schema's writer refuses (out of its integer range)
        return None


def mutated_pte(original: bytes, rng) -> bytes | None:
    """Bytes flipped, or 1-3 fields of the program changed (sizes, operator and value indices, inputs, outputs,
    the memory plan); None when the change cannot be written back."""
    from edgekd.formats.pte.runtime import require_executorch as _require

    if rng.random() < 0.3:
        return flipped(original, rng)
    serialised = _require("executorch.exir._serialize._program", "a test")
    pte = serialised.deserialize_pte_binary(original)
    plan = pte.program.execution_plan[0]
    tensors = [value.val for value in plan.values if type(value.val).__name__ == "Tensor"]
    calls = [instruction.instr_args for instruction in plan.chains[0].instructions]
    for _ in range(rng.integers(1, 4)):
        tensor, call = tensors[rng.integers(0, len(tensors))], calls[rng.integers(0, len(calls))]
        change = rng.integers(0, 6)
        if change == 0 and len(tensor.sizes):
            tensor.sizes = list(tensor.sizes)
            tensor.sizes[rng.integers(0, len(tensor.sizes))] = int(rng.choice(DIMENSIONS))
        elif change == 1 and hasattr(call, "op_index"):
            call.op_index = _index(rng, len(plan.operators))
        elif change == 2 and hasattr(call, "args"):
            call.args = list(call.args)
            call.args[rng.integers(0, len(call.args))] = _index(rng, len(plan.values))
        elif change == 3:
            plan.inputs = [_index(rng, len(plan.values))]
        elif change == 4:
            plan.outputs = [_index(rng, len(plan.values))]
        elif change == 5:
            plan.non_const_buffer_sizes = list(plan.non_const_buffer_sizes)
            plan.non_const_buffer_sizes[rng.integers(0, len(plan.non_const_buffer_sizes))] = int(
                rng.choice([-1, 0, 2**40]))
    try:
        return bytes(serialised.serialize_pte_binary(pte))
    except Exception:  # noqa: BLE001 - a value the program's writer refuses
        return None


def _start_profile(path: Path, *args: str) -> tuple[int, int]:
    """`edgekd profile PATH ARGS` started in a forked child: its pid and the pipe its outcome comes back through."""
    from edgekd.cli import main

    readable, writable = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(readable)
        out, err, code = io.StringIO(), io.StringIO(), 0
        sys.argv = ["edgekd", "profile", str(path), *args]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
            except SystemExit as done:
                code = done.code if isinstance(done.code, int) else 1
        with os.fdopen(writable, "w") as pipe:
            json.dump([code, out.getvalue(), err.getvalue()], pipe)
        os._exit(0)
    os.close(writable)
    return child, readable


def _finish_profile(child: int, readable: int) -> tuple[int, str, str]:
    """(exit code, stdout, stderr); the exit code is minus the signal's number when a signal killed it."""
    with os.fdopen(readable) as pipe:
        answer = pipe.read()
    _, status = os.waitpid(child, 0)
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status), "", ""
    code, out, err = json.loads(answer)
    return code, out, err


def figures(value) -> list[float]:
    """Every number in a profile's JSON, nested ones included."""
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [value]
    if isinstance(value, dict):
        return [number for item in value.values() for number in figures(item)]
    if isinstance(value, list):
        return [number for item in value for number in figures(item)]
    return []


def fuzz_profile(original: Path, mutate, cases: int, folder: Path, *args: str, workers: int = 2) -> dict[str, list]:
    """Each seeded mutation of `original` profiled with `args` (`workers` children at a time): the cases that broke
    the contract, by what broke (a signal, exit 3 or another code outside it, more than one error line, a negative or
    non-finite figure, a budget passed), and the count of each exit code."""
    data = original.read_bytes()
    found: dict[str, list] = {"signal": [], "exit": [], "lines": [], "figure": [], "passed": [], "codes": []}
    mutants = []
    for seed in range(cases):
        mutant = mutate(data, np.random.default_rng(seed))
        if mutant is not None:
            mutants.append((seed, folder / f"{seed}{original.suffix}"))
            mutants[-1][1].write_bytes(mutant)
    for start in range(0, len(mutants), workers):
        batch = mutants[start:start + workers]
        running = [_start_profile(path, "--json", *args) for _, path in batch]
        for (seed, path), child in zip(batch, running):
            _judge(seed, *_finish_profile(*child), bool(args), found)
            path.unlink()
    return found


def _judge(seed: int, code: int, out: str, err: str, budgets: bool, found: dict[str, list]) -> None:
    found["codes"].append(code)
    if code < 0:
        found["signal"].append(seed)
    elif code not in (0, 1, 2):
        found["exit"].append((seed, err.strip()[-200:]))
    elif code == 2 and (len([line for line in err.splitlines() if line.startswith("error:")]) != 1
                        or "Traceback" in err):
        found["lines"].append((seed, err))
    elif code in (0, 1):
        report = json.loads(out)
        if any(not np.isfinite(n) or n < 0 for n in figures(report)):
            found["figure"].append(seed)
        if budgets and report["fits"]:
            found["passed"].append(seed)
