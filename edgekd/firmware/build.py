"""Compiling: TFLite Micro with CMSIS-NN (and CMSIS-DSP's FFT) once per core into the cache, then a deployment's own
sources linked against it into a firmware for the core's QEMU board."""

from __future__ import annotations

import os
import re
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from edgekd.errors import EdgekdError
from edgekd.files import content_key
from edgekd.firmware.toolchain import Core, SourceTree, Tools
from edgekd.paths import cache_root

# TFLM's Makefile flags for a cortex_m_generic build with OPTIMIZED_KERNEL_DIR=cmsis_nn and
# BUILD_TYPE=release_with_logs (NDEBUG, error strings kept: a failure on the device says what failed).
COMMON_FLAGS = ("-fno-unwind-tables", "-fno-asynchronous-unwind-tables", "-ffunction-sections", "-fdata-sections",
                "-fmessage-length=0", "-DTF_LITE_STATIC_MEMORY", "-DTF_LITE_DISABLE_X86_NEON", "-DNDEBUG",
                "-DTF_LITE_MCU_DEBUG_LOG", "-DKERNELS_OPTIMIZED_FOR_SPEED", "-DCMSIS_NN", "-mlittle-endian",
                "-funsigned-char", "-fomit-frame-pointer", "-w")
CXX_FLAGS = ("-std=c++17", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics")
C_FLAGS = ("-std=c17",)
RUNTIME_LEVEL, KERNEL_LEVEL = "-Os", "-O2"  # TFLM's CORE_ and KERNEL_OPTIMIZATION_LEVEL for gcc


def compile_flags(core: Core, tree: SourceTree, source: Path) -> list[str]:
    language = CXX_FLAGS if source.suffix == ".cc" else C_FLAGS
    kernel = "kernels" in source.parts or not source.is_relative_to(tree.tflm)  # kernels, CMSIS-NN, CMSIS-DSP
    return [*core.flags, *COMMON_FLAGS, *language, KERNEL_LEVEL if kernel else RUNTIME_LEVEL,
            *(f"-I{path}" for path in tree.includes())]


def tflm_objects(core: Core, tree: SourceTree, tools: Tools, registrations: set[str], fft: bool) -> list[Path]:
    """TFLM, CMSIS-NN (and CMSIS-DSP's FFT when `fft`) compiled for `core`: each object once per core, flags,
    compiler and source tree, kept in the cache; a deployment compiles only what no earlier one did."""
    sources = tree.tflm_sources(registrations) + (tree.dsp_sources() if fft else [])
    key = content_key([core.flags, COMMON_FLAGS, CXX_FLAGS, C_FLAGS, RUNTIME_LEVEL, KERNEL_LEVEL, tools.version,
                       tree.commit()])
    folder = cache_root() / "firmware" / f"{core.name}-{key}"
    objects = [folder / source.relative_to(tree.root).with_suffix(".o") for source in sources]
    missing = [(source, obj) for source, obj in zip(sources, objects) if not obj.is_file()]
    if missing:
        compile_all(core, tree, tools, [source for source, _ in missing], [obj for _, obj in missing])
    return objects


def compile_all(core: Core, tree: SourceTree, tools: Tools, sources: list[Path], objects: list[Path],
                extra: tuple[str, ...] = ()) -> None:
    """Each source compiled to its object (written whole or not at all), on every core of this machine."""

    def one(pair: tuple[Path, Path]) -> None:
        source, obj = pair
        obj.parent.mkdir(parents=True, exist_ok=True)
        partial = obj.with_name(f".{obj.name}.{os.getpid()}.{threading.get_ident()}")
        compiler = tools.gxx if source.suffix in (".cc", ".cpp") else tools.gcc
        try:
            _run([compiler, *compile_flags(core, tree, source), *extra, "-c", str(source), "-o", str(partial)],
                 f"compiling {source}")
            os.replace(partial, obj)
        finally:
            partial.unlink(missing_ok=True)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(one, zip(sources, objects)))


def link(core: Core, tools: Tools, objects: list[Path], script: Path, elf: Path, specs: tuple[str, ...]) -> Path:
    _run([tools.gxx, *core.flags, "-T", str(script), *specs, "-Wl,--gc-sections", "-o", str(elf),
          *map(str, objects), "-lm"], f"linking {elf.name}")
    return elf


@dataclass(frozen=True)
class Sections:
    """A linked image's sections as arm-none-eabi-size reports them, and its symbols' sizes (bytes)."""

    text: int
    rodata: int
    data: int
    bss: int
    symbols: dict[str, int]

    @property
    def flash(self) -> int:
        return self.text + self.rodata + self.data  # .data's initial values are kept in flash

    @property
    def static_ram(self) -> int:
        return self.data + self.bss

    def symbol(self, name: str) -> int:
        return self.symbols.get(name, 0)


def sections(elf: Path, tools: Tools) -> Sections:
    """Per section from `size -A` (the stack reserved by the linker script is not the image's: it is measured),
    symbols from `nm -S -C`."""
    table = {name: int(size) for name, size in
             re.findall(r"^(\.[\w.]+)\s+(\d+)\s+\d+", _run([tools.size, "-A", str(elf)], "sizing"), re.M)}
    symbols = {name: int(size, 16) for size, name in
               re.findall(r"^[0-9a-f]+ ([0-9a-f]+) \w (.+)$", _run([tools.nm, "-S", "-C", str(elf)], "reading symbols"),
                          re.M)}
    code = sum(size for name, size in table.items() if name in (".text", ".ARM.extab", ".ARM.exidx",
                                                                  ".preinit_array", ".init_array", ".fini_array"))
    return Sections(code, table.get(".rodata", 0), table.get(".data", 0), table.get(".bss", 0), symbols)


def _run(command: list[str], doing: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        said = [line for line in (done.stderr or done.stdout).splitlines() if "error" in line.lower()] or \
            (done.stderr or done.stdout).splitlines() or [f"exit {done.returncode}"]
        raise EdgekdError(f"{doing} failed: {said[0].strip()[:300]}")
    return done.stdout
