"""What building firmware needs: the cores edgekd builds for, arm-none-eabi-gcc and QEMU, and the C sources of TFLite
Micro, CMSIS-NN, CMSIS-DSP and CMSIS-Core in the user's own checkout (never copied into edgekd)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from edgekd.errors import EdgekdError

THIRD_PARTY_ENV = "EDGEKD_THIRD_PARTY"
_TEST_SUPPORT = ("test_helper", "mock_", "fake_")  # TFLM's runtime files that only its tests link
_KERNEL_HELPERS = ("kernel_util", "micro_tensor_utils")  # kernel code every operator's kernel calls
TOOLCHAIN_PACKAGES = ("apt-get install -y gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib "
                      "qemu-system-arm")


@dataclass(frozen=True)
class Core:
    """A core arm-none-eabi-gcc builds for, and the QEMU board with the same core that runs its firmware."""

    name: str
    flags: tuple[str, ...]  # code generation: every object of one firmware must share them (hard-float ABI)
    board: str  # qemu-system-arm -M
    cpi: float  # cycles per instruction on the real core, calibrated (see cpi_source)
    cpi_source: str


# Keyed by the device profiles' `cpu`. The boards' memory (4 MiB of code SSRAM at 0, 4 MiB of data SSRAM at
# 0x20000000) is larger than any device's: the firmware's own sizes, not the board's, are what is judged.
CORES = {
    "Arm Cortex-M4F": Core("cortex-m4", ("-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard", "-mthumb"),
                           "mps2-an386", 0.913, "calibrated by benchmarks/firmware.py: MLPerf Tiny's KWS DS-CNN, "
                           "72.7 ms on NUCLEO-L4R5ZI at 120 MHz, over the 9,556,760 instructions of its shape here"),
    "Arm Cortex-M7": Core("cortex-m7", ("-mcpu=cortex-m7", "-mfpu=fpv5-d16", "-mfloat-abi=hard", "-mthumb"),
                          "mps2-an500", 0.485, "calibrated by benchmarks/firmware.py: MLPerf Tiny's KWS DS-CNN, "
                          "16.4 ms on NUCLEO-H7A3ZI-Q at 280 MHz, over the 9,472,360 instructions of its shape here"),
}


def core_of(cpu: str, device: str) -> Core:
    if cpu not in CORES:
        raise EdgekdError(f"--device {device}: its core ({cpu}) is not one edgekd builds firmware for (arm-none-eabi-"
                          f"gcc and QEMU: {', '.join(CORES)}); deploy the .tflite with its vendor's TFLM port")
    return CORES[cpu]


@dataclass(frozen=True)
class Tools:
    gcc: str
    gxx: str
    ar: str
    size: str
    nm: str
    qemu: str

    @property
    def version(self) -> str:
        return _first_line([self.gcc, "--version"]) + " / " + _first_line([self.qemu, "--version"])


@cache
def tools() -> Tools:
    names = {"gcc": "arm-none-eabi-gcc", "gxx": "arm-none-eabi-g++", "ar": "arm-none-eabi-ar",
             "size": "arm-none-eabi-size", "nm": "arm-none-eabi-nm", "qemu": "qemu-system-arm"}
    found = {key: shutil.which(name) for key, name in names.items()}
    missing = [names[key] for key, path in found.items() if path is None]
    if missing:
        raise EdgekdError(f"{', '.join(missing)} not found: install the toolchain and emulator "
                          f"(Debian/Ubuntu: {TOOLCHAIN_PACKAGES})")
    return Tools(**found)


def _first_line(command: list[str]) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=False).stdout.split("\n")[0].strip()


@dataclass(frozen=True)
class SourceTree:
    """The third-party C sources, each in its own folder under one root (as `../shared/third_party/` lays them out,
    and as TFLM's Makefile downloads them)."""

    root: Path

    @property
    def tflm(self) -> Path:
        return self.root / "tflite-micro"

    def includes(self) -> list[Path]:
        # the root itself for "ruy/...": ruy/ holds the ruy sources themselves
        return [self.tflm, self.root / "flatbuffers" / "include", self.root / "gemmlowp", self.root,
                self.root / "cmsis", self.root / "cmsis" / "CMSIS" / "Core" / "Include", self.root / "cmsis_nn",
                self.root / "cmsis_nn" / "Include", self.root / "cmsis_dsp" / "Include",
                self.root / "cmsis_dsp" / "PrivateInclude"]

    def tflm_sources(self, registrations: set[str]) -> list[Path]:
        """TFLM's library as its Makefile lists it for `OPTIMIZED_KERNEL_DIR=cmsis_nn` (the runtime, the shared
        TFLite code, the kernels with each replaced by its CMSIS-NN version where there is one, CMSIS-NN), less what
        no deployment links: test support, and the kernels of operators the model does not have (a kernel takes
        seconds to compile; each is compiled once per core and kept)."""
        micro = self.tflm / "tensorflow" / "lite" / "micro"
        listed = _makefile_lists(micro / "tools" / "make" / "sources.inc")
        tests = {self.tflm / path for path in listed["MICROLITE_TEST_SRCS"]}
        runtime = [path for folder in ("", "arena_allocator", "memory_planner", "tflite_bridge")
                   for path in sorted((micro / folder).glob("*.cc"))
                   if path not in tests and not path.name.startswith(_TEST_SUPPORT)]
        # the one target file used: DebugLog through a callback the application registers (cortex_m_generic)
        runtime = [micro / "cortex_m_generic" / "debug_log.cc" if path.name == "debug_log.cc" else path
                   for path in runtime]
        lite = self.tflm / "tensorflow" / "lite"
        shared = sorted(path for path in (self.tflm / "tensorflow").rglob("*.c*") if path.suffix in (".c", ".cc")
                        and not path.is_relative_to(micro) and not path.is_relative_to(lite / "experimental")
                        and path != lite / "array.cc")
        kernels = [micro / "kernels" / "cmsis_nn" / path.name
                   if (micro / "kernels" / "cmsis_nn" / path.name).is_file() else self.tflm / path
                   for path in (Path(p) for p in listed["MICROLITE_CC_KERNEL_SRCS"])]
        defined = {path: set(re.findall(r"TFLMRegistration\*?\s+(Register_\w+)\(\)\s*\{", path.read_text()))
                   for path in kernels}
        used = {path.stem for path in kernels if defined[path] & registrations}
        kernels = [path for path in kernels if path.stem in used or not defined[path] and (
            path.stem.removesuffix("_common") in used or path.stem in _KERNEL_HELPERS)]
        cmsis_nn = sorted(path for path in (self.root / "cmsis_nn" / "Source").rglob("*.c")
                          if not path.name.endswith(("_f16.c", "_f32.c")) and path.name != "arm_nntables_flt.c")
        return runtime + shared + kernels + cmsis_nn

    def dsp_sources(self) -> list[Path]:
        """CMSIS-DSP's real FFT in single precision, and the tables it reads (the linker keeps only the size used)."""
        dsp = self.root / "cmsis_dsp" / "Source"
        return [dsp / "TransformFunctions" / name for name in (
            "arm_rfft_fast_f32.c", "arm_rfft_fast_init_f32.c", "arm_cfft_f32.c", "arm_cfft_init_f32.c",
            "arm_cfft_radix8_f32.c", "arm_bitreversal2.c")] + [
            dsp / "CommonTables" / name for name in ("arm_common_tables.c", "arm_const_structs.c")]

    def commit(self) -> str:
        """What identifies the tree in the library cache: the pins its README names, else its files' times."""
        readme = self.root / "README.md"
        if readme.is_file():
            return readme.read_text(errors="replace")
        return str((self.tflm / "tensorflow" / "lite" / "micro" / "tools" / "make" / "sources.inc").stat().st_mtime_ns)


def source_tree(given: Path | None) -> SourceTree:
    """`--third-party DIR`, else $EDGEKD_THIRD_PARTY: a folder holding tflite-micro/, cmsis_nn/, cmsis/, cmsis_dsp/,
    flatbuffers/, gemmlowp/ and ruy/."""
    root = given or (Path(os.environ[THIRD_PARTY_ENV]) if os.environ.get(THIRD_PARTY_ENV) else None)
    if root is None:
        raise EdgekdError(f"--third-party: give the folder of TFLite Micro, CMSIS-NN, CMSIS-DSP and CMSIS-Core sources "
                          f"(or set {THIRD_PARTY_ENV}); get them with `git clone https://github.com/tensorflow/"
                          f"tflite-micro` and its tools/make/*_download.sh pins")
    missing = [name for name in ("tflite-micro/tensorflow/lite/micro", "cmsis_nn/Source", "cmsis/CMSIS/Core/Include",
                                 "cmsis_dsp/Source", "flatbuffers/include", "gemmlowp/fixedpoint", "ruy")
               if not (root / name).is_dir()]
    if missing:
        raise EdgekdError(f"{root}: not a firmware source tree (no {', '.join(missing)}); give the folder holding "
                          f"tflite-micro/, cmsis_nn/, cmsis/, cmsis_dsp/, flatbuffers/, gemmlowp/ and ruy/")
    return SourceTree(root.resolve())


def _makefile_lists(path: Path) -> dict[str, list[str]]:
    """`NAME := \\` blocks of a TFLM Makefile include, as paths relative to the TFLM root."""
    lists: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in path.read_text().splitlines():
        start = re.match(r"^(\w+) :?= \\$", line)
        if start:
            current = lists.setdefault(start.group(1), [])
        elif current is not None and line.startswith("$(TENSORFLOW_ROOT)"):
            current.append(line.removeprefix("$(TENSORFLOW_ROOT)").removesuffix("\\").strip())
            if not line.endswith("\\"):
                current = None
        else:
            current = None
    return lists
