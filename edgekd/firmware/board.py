"""The library linked into firmware for the core's QEMU board and run there: two images from the same objects (the
harness, which reads windows through semihosting and counts instructions; the footprint, the library as an
application links it, sized), and what the core computed."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekd.errors import EdgekdError
from edgekd.firmware.build import Sections, compile_all, link, sections, tflm_objects
from edgekd.firmware.library import Library, op_resolver_methods, template_folder
from edgekd.firmware.toolchain import Core, SourceTree, Tools

BOARD_FILES = ("board.h", "startup.c", "harness.c", "footprint.c", "link.ld")
FOOTPRINT_BUFFERS = ("audio", "embedding")  # footprint.c's own: the application's, not the library's
SECONDS_PER_WINDOW = 20.0  # QEMU's time limit per window, beyond any student's


@dataclass(frozen=True)
class Firmware:
    harness: Path
    footprint: Path
    sections: Sections  # of the footprint image
    application_bytes: int  # footprint.c's own buffers, left out of the library's RAM


@dataclass(frozen=True)
class BoardRun:
    """Per window: instructions in the front-end and the network, the C front-end's log-mel (None when the model
    computes it), the embedding through the C front-end, and the raw output for the host's own input."""

    frontend_instructions: np.ndarray
    network_instructions: np.ndarray
    logmel: np.ndarray | None
    embedding: np.ndarray | None  # None for a tensor input
    outputs: np.ndarray
    arena_used: int
    stack: int
    init_instructions: int


def build_firmware(library: Library, core: Core, tree: SourceTree, tools: Tools) -> Firmware:
    """TFLM's objects from the cache, the library's and the board's compiled here, linked twice."""
    known = dict(op_resolver_methods(tree).values())
    registrations = {known[method] for method in library.resolver_methods}
    tflm = tflm_objects(core, tree, tools, registrations, fft=library.frontend_outside)
    folder = library.folder / "firmware"
    folder.mkdir(exist_ok=True)
    for name in BOARD_FILES:
        shutil.copyfile(template_folder() / "board" / name, folder / name)
    include = (f"-I{library.folder}", f"-I{folder}")
    own = [*library.sources, folder / "harness.c", folder / "footprint.c"]
    objects = [folder / "obj" / f"{path.stem}{path.suffix.replace('.', '_')}.o" for path in own]
    starts = [folder / "obj" / "startup_harness.o", folder / "obj" / "startup_footprint.o"]
    compile_all(core, tree, tools, own, objects, include)
    compile_all(core, tree, tools, [folder / "startup.c"], starts[:1], (*include, "-DBOARD_SEMIHOSTING"))
    compile_all(core, tree, tools, [folder / "startup.c"], starts[1:], include)
    library_objects = objects[:len(library.sources)]
    harness = link(core, tools, [starts[0], objects[-2], *library_objects, *tflm], folder / "link.ld",
                   folder / "harness.elf", ("--specs=rdimon.specs", "-nostartfiles"))
    footprint = link(core, tools, [starts[1], objects[-1], *library_objects, *tflm], folder / "link.ld",
                     folder / "footprint.elf", ("--specs=nano.specs", "--specs=nosys.specs", "-nostartfiles"))
    figures = sections(footprint, tools)
    application = sum(figures.symbol(name) for name in FOOTPRINT_BUFFERS)
    return Firmware(harness, footprint, figures, application)


def run_on_board(firmware: Firmware, library: Library, core: Core, tools: Tools, audio: np.ndarray | None,
                 model_inputs: np.ndarray) -> BoardRun:
    """The harness under QEMU with instruction counting, on `audio` windows (None for a tensor input) and the host's
    own model inputs."""
    folder = firmware.harness.parent
    with open(folder / "windows.bin", "wb") as out:
        out.write(np.uint32(len(model_inputs)).tobytes())
        for index, given in enumerate(model_inputs):
            if audio is not None:
                out.write(audio[index].astype(np.float32).tobytes())
            out.write(np.ascontiguousarray(given).tobytes())
    (folder / "results.bin").unlink(missing_ok=True)
    command = [tools.qemu, "-M", core.board, "-nographic", "-semihosting-config", "enable=on,target=native",
               "-icount", "shift=0", "-kernel", firmware.harness.name]
    try:
        done = subprocess.run(command, cwd=folder, capture_output=True, text=True,
                              timeout=30 + SECONDS_PER_WINDOW * len(model_inputs), check=False)
    except subprocess.TimeoutExpired:
        raise EdgekdError(f"{firmware.harness}: the firmware did not finish under QEMU ({core.board}) in time; it "
                          f"hangs on the core (a fault)") from None
    said = re.search(r"EDGEKD-RESULT windows=(\d+) arena_used=(\d+) stack=(\d+) init_instructions=(\d+)",
                     done.stdout)
    if done.returncode != 0 or said is None:
        error = re.search(r"EDGEKD-ERROR (.*)", done.stdout)
        raise EdgekdError(f"{firmware.harness}: the firmware failed under QEMU ({core.board}): "
                          f"{error.group(1) if error else (done.stderr or done.stdout).strip()[:200] or 'exit ' + str(done.returncode)}")
    return _read_results(folder / "results.bin", library, len(model_inputs), *map(int, said.groups()[1:]))


def _read_results(path: Path, library: Library, count: int, arena_used: int, stack: int, init: int) -> BoardRun:
    model, spec = library.model, library.frontend
    fields = [("instructions", np.uint64, (2,))]
    if library.frontend_outside:
        fields.append(("logmel", np.float32, (spec.n_mels, spec.num_frames(library.audio_samples))))
    if library.takes_audio:
        fields.append(("embedding", np.float32, (int(np.prod(model.output_shape)),)))
    fields.append(("output", np.int8 if model.output_type == "int8" else np.float32, tuple(model.output_shape[1:])))
    records = np.fromfile(path, dtype=np.dtype(fields))
    if len(records) != count:
        raise EdgekdError(f"{path}: the firmware wrote {len(records)} of {count} windows")
    return BoardRun(records["instructions"][:, 0].astype(np.int64), records["instructions"][:, 1].astype(np.int64),
                    records["logmel"] if library.frontend_outside else None,
                    records["embedding"] if library.takes_audio else None, records["output"], arena_used, stack, init)
