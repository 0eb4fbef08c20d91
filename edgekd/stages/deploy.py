"""`edgekd deploy`: a run's student as a TFLite Micro C/C++ library for a device's core and, with --build, as
firmware run under QEMU on held-out windows of the run's own data: the outputs compared with TFLM's x86
interpreter, the C front-end with the PyTorch one, flash and RAM of the linked image, instructions per inference."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgekd.data.domain import load_domain_data
from edgekd.errors import EXIT_VIOLATION, EdgekdError
from edgekd.extras import check_installed
from edgekd.files import check_writable, write_json
from edgekd.firmware.board import build_firmware, run_on_board
from edgekd.firmware.library import (
    InputKind,
    model_facts,
    resolver_methods,
    write_library,
)
from edgekd.firmware.result import (
    DEPLOY_JSON,
    MODEL_COPY,
    DeployResult,
    Measured,
    latency_ms,
)
from edgekd.firmware.toolchain import core_of, source_tree, tools
from edgekd.formats.options import ExportOptions
from edgekd.formats.tflite.runtime import (
    TflmRun,
    dequantise,
    run_tflite_raw,
    tflm_arena_isolated,
    tflm_details,
)
from edgekd.frontend import FrontendSpec, LogMel
from edgekd.metrics import cosine_rows
from edgekd.profile.devices import DeviceProfile, load_device
from edgekd.run_dir import RunDir
from edgekd.stages.export import export_run
from edgekd.units import format_bytes

# The C front-end is held to the PyTorch one it replaces: a front-end that differs from the trained one costs
# accuracy silently. Float32 arithmetic in another order differs by ~1e-4 dB.
FRONTEND_DB_TOLERANCE = 0.01
DEPLOYED = {"int8": "student.int8.tflite", "int16x8": "student.int16x8.tflite", "fp32": "student.tflite"}
FRONTEND_MIN_COSINE = 0.999


class BudgetExceeded(EdgekdError):
    """The firmware does not fit the device, or what it computes is not what the host computes."""

    exit_code = EXIT_VIOLATION


def deploy(source: Path, device_name: str, out: Path | None, build: bool, windows: int, frontend: str,
           precision: str, third_party: Path | None) -> DeployResult:
    device = load_device(device_name)
    core = core_of(device.cpu, device.name)  # before any work: a core nothing here builds for is one line
    check_installed("tflite", "edgekd deploy")
    toolchain, tree = tools(), source_tree(third_party)
    if frontend == "include" and precision != "fp32":
        raise EdgekdError(f"--frontend include --precision {precision}: a quantised front-end loses the embedding; "
                          f"deploy {precision} with --frontend exclude, or FP32 with the front-end inside")
    model_file = _model_file(source, out, frontend, precision)
    tflite, run_dir = model_file.path, model_file.run_dir
    folder = out or (run_dir or tflite.parent) / "deploy" / device.name
    check_writable(folder / DEPLOY_JSON)
    if build and model_file.kind != "tensor" and run_dir is None:
        raise EdgekdError(f"{source}: --build runs the firmware on the run's own windows; give the run directory "
                          f"(or an export inside it)")
    details = tflm_details(tflite)
    model = model_facts(tflite, details)
    arena = tflm_arena_isolated(tflite)
    # the trained student, loaded once: its mel table for the C front-end, its windows and embeddings for --build
    wanted = model_file.kind == "logmel" or build and model_file.kind != "tensor"
    student, recipe = RunDir(run_dir).load_student() if wanted and run_dir is not None else (None, None)
    mel = _mel_of(student, model_file.frontend) if model_file.kind == "logmel" else None
    library = write_library(folder, tflite, model, model_file.kind, model_file.frontend, model_file.samples,
                            arena.total, resolver_methods(tree, model.operators, tflite), mel, core)
    result = DeployResult(folder, device.name, core.name, core.board, tflite,
                          {"int8": "int8", "int16": "int16x8", "float32": "fp32"}[model.input_type], library.kind, list(model.operators),
                          library.arena_bytes, arena.total, tflite.stat().st_size, device.clock_mhz,
                          {"flash": device.flash_budget, "ram": device.ram_budget})
    if build:
        firmware = build_firmware(library, core, tree, toolchain)
        if library.takes_audio:
            audio, logmel, reference = _held_out(student, recipe, run_dir, windows, model_file.samples)
            host = run_tflite_raw(tflite, logmel if library.frontend_outside else audio)
        else:
            audio = logmel = reference = None
            host = run_tflite_raw(tflite, _random_inputs(model, details["input"], windows))
        board = run_on_board(firmware, library, core, toolchain, audio, host.inputs)
        result.measured = _compare(firmware, board, host, logmel, reference, core, device)
        result.notes.append(f"latency: instructions × {core.cpi:g} cycles per instruction ({core.cpi_source}) at "
                            f"{device.clock_mhz:g} MHz; QEMU counts instructions, not cycles")
        if not library.takes_audio:
            result.notes.append(f"a .tflite from outside edgekd: run on {windows} random inputs (seeded), compared "
                                f"with TFLM on x86 byte for byte")
    shutil.copyfile(tflite, folder / MODEL_COPY)
    write_json(folder / DEPLOY_JSON, result.to_json())
    if result.measured is not None:
        _judge(result, device)
    return result


@dataclass(frozen=True)
class _ModelFile:
    path: Path
    run_dir: Path | None  # the run it came from: its windows are what --build runs on
    kind: InputKind
    frontend: FrontendSpec | None
    samples: int | None


def _model_file(source: Path, out: Path | None, frontend: str, precision: str) -> _ModelFile:
    """The `.tflite` to deploy and what it takes: a run is exported first (gated like `edgekd export`), an export
    folder or its file read with its export.json, a .tflite from elsewhere deployed as a tensor-in model."""
    exported_from = None
    if (source / "student.pt").is_file():
        exported_from = source
        export = (out or source / "deploy") / "export"
        # the per-layer walk only for the INT8 file deployed: an int16x8 deploy leaves a missed INT8 gate alone
        options = ExportOptions(formats=("tflite",), frontend=frontend, int8="none" if precision == "fp32" else
                                "static", int16x8=precision == "int16x8", fallback=precision == "int8")
        result = export_run(source, export, options)
        # by its file: the INT8 one may be a per-layer mixed-precision file ("int8+mixed")
        variant = next(v for v in result.variants if Path(v.file).name == DEPLOYED[precision])
        if not variant.passed:
            raise BudgetExceeded(f"{export / variant.file}: missed the export gate ({'; '.join(variant.missed)}); "
                                 f"nothing to deploy")
        source = export / variant.file
    if source.is_dir():
        source = source / DEPLOYED[precision]
    if source.suffix != ".tflite" or not source.is_file():
        raise EdgekdError(f"{source}: give a run directory, an `edgekd export --format tflite` folder or a .tflite")
    run_dir = exported_from or next((folder for folder in source.resolve().parents
                                     if (folder / "student.pt").is_file()), None)
    report = source.parent / "export.json"
    if not report.is_file():
        return _ModelFile(source, run_dir, "tensor", None, None)
    try:
        metadata = json.loads(report.read_text())["metadata"]
        frontend_facts = json.loads(metadata["frontend"])
        spec = FrontendSpec(**{key: value for key, value in frontend_facts.items() if key != "in_graph"})
        samples = round(metadata["window_seconds"] * metadata["sample_rate"])
        in_graph = bool(frontend_facts["in_graph"])
    except (OSError, ValueError, KeyError, TypeError):
        raise EdgekdError(f"{report}: not an export.json edgekd wrote; export the run again") from None
    return _ModelFile(source, run_dir, "audio" if in_graph else "logmel", spec, samples)


def _mel_of(student, spec: FrontendSpec) -> np.ndarray:
    """The filterbank the student was trained with (its run's front-end), else the one its spec computes."""
    return (student.frontend.mel if student is not None else LogMel(spec).mel).numpy()


def _held_out(student, recipe, run_dir: Path, count: int, samples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`count` held-out windows of the run (validation and test, spread evenly), their PyTorch log-mel and the
    student's PyTorch embedding."""
    data = load_domain_data(recipe.domain(), None, recipe.student.sample_rate)
    rows = np.concatenate([data.windows.split_index("val"), data.windows.split_index("test")])
    rows = rows[np.linspace(0, len(rows) - 1, min(count, len(rows))).astype(int)]
    audio = np.asarray(data.student_audio[rows], dtype=np.float32)
    if audio.shape[1] != samples:
        raise EdgekdError(f"{run_dir}: its windows have {audio.shape[1]} samples, the model {samples}; export again")
    with torch.no_grad():
        tensor = torch.from_numpy(audio)
        return audio, student.frontend(tensor).numpy(), student(tensor).numpy()


def _random_inputs(model, details: dict, count: int) -> np.ndarray:
    """Seeded inputs over the input's whole range: every integer value of its type, or unit-variance floats."""
    rng = np.random.default_rng(0)
    shape = (count, *model.input_shape[1:])
    if model.input_type == "float32":
        return rng.standard_normal(shape).astype(np.float32)
    limits = np.iinfo(details["dtype"])
    return dequantise(rng.integers(limits.min, limits.max + 1, shape).astype(details["dtype"]), details)


def _compare(firmware, board, host: TflmRun, logmel: np.ndarray | None, student: np.ndarray | None, core,
             device: DeviceProfile) -> Measured:
    identical = int(np.sum(np.all(board.outputs.reshape(len(board.outputs), -1) ==
                                  host.outputs.reshape(len(host.outputs), -1), axis=1)))
    on_core = dequantise(board.outputs, host.output_details)
    difference = float(np.abs(on_core - host.dequantised()).max())
    db = cosines = None
    if board.logmel is not None:
        db = float(np.abs(board.logmel - logmel).max())
        cosines = cosine_rows(board.embedding, host.dequantised())
    fidelity = cosine_rows(board.embedding, student) if student is not None else None
    figures = firmware.sections
    frontend, network = int(board.frontend_instructions.max()), int(board.network_instructions.max())
    return Measured(
        len(board.outputs), figures.flash, figures.static_ram - firmware.application_bytes + board.stack,
        figures.text, figures.rodata, figures.data, figures.bss - firmware.application_bytes, board.stack,
        board.arena_used, board.init_instructions, frontend, network, identical, difference, db,
        None if cosines is None else float(cosines.mean()), None if cosines is None else float(cosines.min()),
        None if fidelity is None else float(fidelity.mean()), core.cpi, latency_ms(frontend, core.cpi, device.clock_mhz),
        latency_ms(network, core.cpi, device.clock_mhz))


def _judge(result: DeployResult, device: DeviceProfile) -> None:
    measured = result.measured
    over = [f"{what} {format_bytes(used)} > budget {format_bytes(budget)}"
            for what, used, budget in (("flash", measured.flash, device.flash_budget),
                                       ("RAM", measured.ram, device.ram_budget)) if used > budget]
    if over:
        raise BudgetExceeded(f"{result.folder / DEPLOY_JSON}: the firmware does not fit {device.name}: "
                             f"{'; '.join(over)}")
    if measured.frontend_max_db_diff is not None and (measured.frontend_max_db_diff > FRONTEND_DB_TOLERANCE or
                                                      measured.frontend_min_cosine < FRONTEND_MIN_COSINE):
        raise BudgetExceeded(f"{result.folder / DEPLOY_JSON}: the C front-end differs from the trained one (max "
                             f"{measured.frontend_max_db_diff:.3g} dB > {FRONTEND_DB_TOLERANCE} dB, or embedding "
                             f"cosine {measured.frontend_min_cosine:.5f} < {FRONTEND_MIN_COSINE}); deploy again from "
                             f"the run")
