"""The C/C++ library `edgekd deploy` writes: the model as an aligned array, an op resolver with exactly its
operators, an arena sized from TFLM's measured total, a small API, and the front-end in C when the model takes
log-mel. Generated from the file and the run's own front-end; its Makefile builds it for the device's core."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np

from edgekd.errors import EdgekdError
from edgekd.files import write_text
from edgekd.firmware.toolchain import THIRD_PARTY_ENV, Core, SourceTree
from edgekd.frontend import FrontendSpec

# TFLM's arena on the core is what its allocator plans on the host less the 64-bit pointers' share; the margin covers
# alignment padding that differs between the two (the core's own figure, arena_used, is measured by --build).
ARENA_MARGIN = 1024
RFFT_SIZES = tuple(2 ** power for power in range(5, 13))  # the lengths CMSIS-DSP's arm_rfft_fast_f32 has tables for
LIBRARY_FILES = ("edgekd_model.h", "edgekd_model.cc")
FRONTEND_FILES = ("edgekd_frontend.h", "edgekd_frontend.c")
# What the model takes: audio (its front-end inside), the student's log-mel (computed in C on the device), or a
# tensor the application fills (a .tflite from outside edgekd).
InputKind = Literal["audio", "logmel", "tensor"]
_TYPES = {"int8": ("int8_t", "kTfLiteInt8", 1), "int16": ("int16_t", "kTfLiteInt16", 2),
          "float32": ("float", "kTfLiteFloat32", 4)}


@dataclass(frozen=True)
class ModelFacts:
    """What the library is generated for, read from the `.tflite`."""

    operators: tuple[str, ...]  # builtin operator names, in first use
    input_shape: tuple[int, ...]
    input_type: str  # int8 | int16 | float32
    output_shape: tuple[int, ...]
    output_type: str

    def bytes_of(self, which: str) -> int:
        shape, kind = (self.input_shape, self.input_type) if which == "input" else (self.output_shape,
                                                                                    self.output_type)
        return int(np.prod(shape)) * _TYPES[kind][2]


@dataclass
class Library:
    folder: Path
    model: ModelFacts
    kind: InputKind
    frontend: FrontendSpec | None  # None for a tensor input
    audio_samples: int | None
    arena_bytes: int
    resolver_methods: tuple[str, ...]
    sources: list[Path] = field(default_factory=list)  # the library's own C/C++ files, to compile

    @property
    def frontend_outside(self) -> bool:
        return self.kind == "logmel"

    @property
    def takes_audio(self) -> bool:
        return self.kind != "tensor"


def model_facts(path: Path, details: dict) -> ModelFacts:
    """From the file's flatbuffer (its operators) and TFLM's own input and output details."""
    from edgekd.formats.tflite.flatbuffer import op_type, unpack

    model = unpack(path.read_bytes(), "deploying a .tflite")
    operators = tuple(dict.fromkeys(op_type(model, op, "deploying a .tflite")
                                    for graph in model.subgraphs for op in graph.operators))
    kinds = {"input": {np.dtype(np.int8): "int8", np.dtype(np.int16): "int16", np.dtype(np.float32): "float32"},
             "output": {np.dtype(np.int8): "int8", np.dtype(np.float32): "float32"}}
    io = {}
    for which in ("input", "output"):
        kind = kinds[which].get(np.dtype(details[which]["dtype"]))
        if kind is None:
            raise EdgekdError(f"{path}: its {which} is {np.dtype(details[which]['dtype'])}; edgekd deploys models "
                              f"whose {which} is {', '.join(kinds[which].values())}")
        io[which] = (tuple(int(d) for d in details[which]["shape"]), kind)
    return ModelFacts(operators, *io["input"], *io["output"])


def resolver_methods(tree: SourceTree, operators: tuple[str, ...], path: Path) -> tuple[str, ...]:
    """MicroMutableOpResolver's method for each operator, read from TFLM's own header."""
    known = op_resolver_methods(tree)
    missing = [op for op in operators if op not in known]
    if missing:
        raise EdgekdError(f"{path}: TFLM's op resolver has no {', '.join(missing)}; export a student whose ops it has")
    return tuple(known[op][0] for op in operators)


def op_resolver_methods(tree: SourceTree) -> dict[str, tuple[str, str]]:
    """BuiltinOperator name → (the resolver's Add method, the kernel registration it defaults to)."""
    header = (tree.tflm / "tensorflow" / "lite" / "micro" / "micro_mutable_op_resolver.h").read_text()
    found = re.findall(r"TfLiteStatus (Add\w+)\(\s*const TFLMRegistration& registration\s*=\s*(?:tflite::)?"
                       r"(Register_\w+)\(\)\)\s*\{\s*return AddBuiltin\(BuiltinOperator_(\w+),", header)
    return {op: (method, registration) for method, registration, op in found}


def write_library(folder: Path, tflite: Path, model: ModelFacts, kind: InputKind, frontend: FrontendSpec | None,
                  audio_samples: int | None, tflm_total: int, methods: tuple[str, ...], mel: np.ndarray | None,
                  core: Core) -> Library:
    """Every file of the library in `folder` (created or refreshed: files of a previous deploy are replaced)."""
    library = Library(folder, model, kind, frontend, audio_samples, _aligned(tflm_total + ARENA_MARGIN), methods)
    if kind == "logmel":
        _check_frontend(model, frontend, audio_samples, tflite)
    elif kind == "audio" and model.input_shape != (1, audio_samples):
        raise EdgekdError(f"{tflite}: its input is {model.input_shape}, not the {audio_samples} samples its "
                          f"export.json says; export it again")
    folder.mkdir(parents=True, exist_ok=True)
    names = LIBRARY_FILES + (FRONTEND_FILES if library.frontend_outside else ())
    generated = ("edgekd_model_data.cc",) + (("edgekd_frontend_tables.c",) if library.frontend_outside else ())
    if not library.frontend_outside:  # a previous deploy's C front-end would no longer compile against this config
        for name in (*FRONTEND_FILES, "edgekd_frontend_tables.c"):
            (folder / name).unlink(missing_ok=True)
    for name in names:
        shutil.copyfile(_template(name), folder / name)
    write_text(folder / "edgekd_config.h", _config(library, tflite))
    write_text(folder / "edgekd_model_data.cc", _model_array(tflite))
    if library.frontend_outside:
        write_text(folder / "edgekd_frontend_tables.c", _frontend_tables(frontend, mel))
    library.sources = [folder / name for name in (*names, *generated) if name.endswith((".c", ".cc"))]
    write_text(folder / "Makefile", _makefile(library, core))
    write_text(folder / "README.md", _readme(library, tflite, core))
    return library


def template_folder() -> Path:
    return Path(str(resources.files("edgekd.firmware") / "c"))


def _template(name: str) -> Path:
    return template_folder() / name


def _aligned(size: int, to: int = 16) -> int:
    return -(-size // to) * to


def _check_frontend(model: ModelFacts, frontend: FrontendSpec, samples: int, path: Path) -> None:
    expected = (1, frontend.n_mels, frontend.num_frames(samples))
    if model.input_shape != expected:
        raise EdgekdError(f"{path}: its input is {model.input_shape}, not the log-mel {expected} its export.json's "
                          f"front-end computes; export it again")
    if frontend.n_fft not in RFFT_SIZES:
        raise EdgekdError(f"{path}: n_fft {frontend.n_fft} has no CMSIS-DSP real FFT (sizes "
                          f"{', '.join(map(str, RFFT_SIZES))}); distil with one of them, or deploy with --frontend "
                          f"include")


def _config(library: Library, tflite: Path) -> str:
    model, spec = library.model, library.frontend
    define = {
        "EDGEKD_EMBEDDING_DIM": int(np.prod(model.output_shape)),
        "EDGEKD_TAKES_AUDIO": int(library.takes_audio), "EDGEKD_FRONTEND_OUTSIDE": int(library.frontend_outside),
        "EDGEKD_INPUT_BYTES": model.bytes_of("input"), "EDGEKD_OUTPUT_BYTES": model.bytes_of("output"),
        "EDGEKD_INPUT_INT8": int(model.input_type == "int8"), "EDGEKD_INPUT_INT16": int(model.input_type == "int16"),
        "EDGEKD_OUTPUT_INT8": int(model.output_type == "int8"),
        "EDGEKD_INPUT_TFLITE_TYPE": _TYPES[model.input_type][1],
        "EDGEKD_OUTPUT_TFLITE_TYPE": _TYPES[model.output_type][1],
        "EDGEKD_ARENA_BYTES": library.arena_bytes, "EDGEKD_OPERATOR_COUNT": len(library.resolver_methods),
        "EDGEKD_REGISTER_OPERATORS(resolver)": " ".join(f"(resolver).{method}();"
                                                        for method in library.resolver_methods),
    }
    if library.takes_audio:
        define |= {"EDGEKD_SAMPLE_RATE": spec.sample_rate, "EDGEKD_AUDIO_SAMPLES": library.audio_samples}
    if library.frontend_outside:
        define |= {"EDGEKD_N_FFT": spec.n_fft, "EDGEKD_HOP": spec.hop_length, "EDGEKD_N_MELS": spec.n_mels,
                   "EDGEKD_FRAMES": spec.num_frames(library.audio_samples),
                   "EDGEKD_LOG_FLOOR": f"{float(spec.log_floor)!r}f",
                   "EDGEKD_TOP_DB_FLOOR": int(spec.top_db is not None),
                   "EDGEKD_TOP_DB": f"{float(spec.top_db or 0)!r}f",
                   "EDGEKD_RFFT_INIT(instance)": f"arm_rfft_fast_init_{spec.n_fft}_f32(instance)"}
    lines = [f"/* Generated by edgekd deploy from {tflite.name}: the model's contract, and its arena. */",
             "#ifndef EDGEKD_CONFIG_H_", "#define EDGEKD_CONFIG_H_", ""]
    lines += [f"#define {name} {value}" for name, value in define.items()]
    return "\n".join([*lines, "", "#endif", ""])


def _model_array(tflite: Path) -> str:
    data = tflite.read_bytes()
    rows = (", ".join(f"0x{byte:02x}" for byte in data[at:at + 16]) for at in range(0, len(data), 16))
    return (f"/* {tflite.name} ({len(data)} bytes), generated by edgekd deploy. 16-byte aligned: TFLM reads its "
            "buffers in place. */\n"
            f"extern \"C\" {{\nalignas(16) extern const unsigned char edgekd_model_data[{len(data)}] = {{\n"
            + ",\n".join(rows) + "\n};\n}\n")


def _frontend_tables(spec: FrontendSpec, mel: np.ndarray) -> str:
    """The periodic Hann window and the filterbank stored sparse: each filter's first non-zero bin and its weights."""
    import torch

    window = torch.hann_window(spec.n_fft, periodic=True, dtype=torch.float64).numpy().astype(np.float32)
    firsts, counts, weights = [], [], []
    for row in np.asarray(mel, dtype=np.float32):
        nonzero = np.flatnonzero(row)
        first, last = (int(nonzero[0]), int(nonzero[-1]) + 1) if len(nonzero) else (0, 0)
        firsts.append(first)
        counts.append(last - first)
        weights.extend(row[first:last])

    def floats(values) -> str:
        return ",\n".join(", ".join(f"{float(v)!r}f" for v in values[at:at + 8]) for at in range(0, len(values), 8))

    return (f"/* The front-end's tables, generated by edgekd deploy from the run: window and mel filterbank "
            f"({spec.n_mels} filters over {spec.n_fft // 2 + 1} bins). */\n#include \"edgekd_config.h\"\n\n"
            f"const float edgekd_window[EDGEKD_N_FFT] = {{\n{floats(window)}\n}};\n"
            f"const unsigned short edgekd_mel_first[EDGEKD_N_MELS] = {{{', '.join(map(str, firsts))}}};\n"
            f"const unsigned short edgekd_mel_count[EDGEKD_N_MELS] = {{{', '.join(map(str, counts))}}};\n"
            f"const float edgekd_mel_weights[{max(len(weights), 1)}] = {{\n{floats(weights or [0.0])}\n}};\n")


def _makefile(library: Library, core: Core) -> str:
    sources = " ".join(path.name for path in library.sources)
    return f"""# Builds libedgekd.a (this folder's sources) for {core.name}; link it with TFLite Micro and CMSIS-NN
# built with the same flags (TFLM: make -f tensorflow/lite/micro/tools/make/Makefile TARGET=cortex_m_generic
# TARGET_ARCH={core.name}+fp OPTIMIZED_KERNEL_DIR=cmsis_nn microlite), or let `edgekd deploy --build` do both.
THIRD_PARTY ?= $({THIRD_PARTY_ENV})
CC := arm-none-eabi-gcc
CXX := arm-none-eabi-g++
AR := arm-none-eabi-ar
CORE_FLAGS := {' '.join(core.flags)}
FLAGS := $(CORE_FLAGS) -O2 -ffunction-sections -fdata-sections -DTF_LITE_STATIC_MEMORY -DCMSIS_NN \\
  -I. -I$(THIRD_PARTY)/tflite-micro -I$(THIRD_PARTY)/flatbuffers/include -I$(THIRD_PARTY)/gemmlowp \\
  -I$(THIRD_PARTY)/cmsis/CMSIS/Core/Include -I$(THIRD_PARTY)/cmsis_dsp/Include
CXXFLAGS := $(FLAGS) -std=c++17 -fno-rtti -fno-exceptions -fno-threadsafe-statics
CFLAGS := $(FLAGS) -std=c17
SOURCES := {sources}
OBJECTS := $(patsubst %.cc,%.o,$(patsubst %.c,%.o,$(SOURCES)))

libedgekd.a: $(OBJECTS)
\t$(AR) rcs $@ $^

%.o: %.cc
\t$(CXX) $(CXXFLAGS) -c $< -o $@

%.o: %.c
\t$(CC) $(CFLAGS) -c $< -o $@

clean:
\trm -f $(OBJECTS) libedgekd.a
"""


def _readme(library: Library, tflite: Path, core: Core) -> str:
    model, spec = library.model, library.frontend
    if not library.takes_audio:
        use = ("`edgekd_init()` once, then per inference fill `edgekd_input()` (`EDGEKD_INPUT_BYTES` bytes, as the "
               "model's input tensor takes them), call `edgekd_invoke()` and read `edgekd_output()`.")
    else:
        use = (f"`edgekd_init()` once, then `edgekd_embed_audio(audio, embedding)` per window of "
               f"{library.audio_samples} float samples at {spec.sample_rate} Hz (mono, in [-1, 1]) → "
               f"{int(np.prod(model.output_shape))} floats. " + _frontend_words(library))
    return f"""# {tflite.stem}: the model as a TFLite Micro library

Generated by `edgekd deploy` from `{tflite.name}` for {core.name}. Operators: {', '.join(model.operators)}.

- `edgekd_model.h`: {use}
- `edgekd_config.h`: the contract (input {model.input_type} {list(model.input_shape)}, output {model.output_type}
  {list(model.output_shape)}) and the arena: `EDGEKD_ARENA_BYTES` = {library.arena_bytes} B, TFLM's total planned
  on the host plus {ARENA_MARGIN} B (the core plans less: 32-bit pointers).
- `edgekd_model_data.cc`: the model, a 16-byte aligned `const` array (it stays in flash).

## In your project
Add this folder's `.c`/`.cc` files and TFLite Micro with CMSIS-NN (`OPTIMIZED_KERNEL_DIR=cmsis_nn`) to your build,
with `{' '.join(core.flags)}`, `-DTF_LITE_STATIC_MEMORY -DCMSIS_NN` and the include folders in `Makefile`
(`make THIRD_PARTY=/path/to/sources` builds `libedgekd.a` from this folder alone). TFLM's messages go to the
callback you give `RegisterDebugLogCallback()` (`tensorflow/lite/micro/cortex_m_generic/debug_log_callback.h`).
The library allocates nothing: the arena and the front-end's buffers are static.
"""


def _frontend_words(library: Library) -> str:
    spec = library.frontend
    if not library.frontend_outside:
        return "The model computes its log-mel itself: `edgekd_embed_audio()` hands it the audio."
    floor = f", floored {spec.top_db:g} dB below the window's loudest bin" if spec.top_db else ""
    return (f"`edgekd_embed_audio()` computes the student's log-mel in C first (`edgekd_frontend.c`: "
            f"{spec.n_fft}-point frames every {spec.hop_length} samples, periodic Hann window, CMSIS-DSP's "
            f"`arm_rfft_fast_f32`, the run's {spec.n_mels}-filter mel filterbank, dB{floor}), then quantises it to "
            f"the model's input.")
