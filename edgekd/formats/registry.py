"""The formats `edgekd export` writes and `edgekd profile` reads, by name (the `--format` name and the files'
suffix): a plain dict like the other registries, each entry naming its `Format` class, imported on first use
(`edgekd.formats.base.format_named`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FormatEntry:
    builder: str  # "package.module:Class": the format's `Format`
    description: str
    extra: str | None = None  # the optional extra its converter and runtime need
    memory_key: str | None = None  # the JSON key of its runtime's own memory figure
    runtimes: tuple[str, ...] = ()  # the device runtimes (devices/*.yaml `runtime:`) that load its files


FORMATS: dict[str, FormatEntry] = {
    "onnx": FormatEntry("edgekd.formats.onnx.format:OnnxFormat", "ONNX: FP32, INT8 (static, dynamic), FP16",
                        runtimes=("onnxruntime", "tensorrt")),
    # TFLite Micro with or without a vendor's kernels: they load .tflite and plan one arena
    "tflite": FormatEntry("edgekd.formats.tflite.format:TfliteFormat", "TensorFlow Lite Micro flatbuffers: FP32, INT8",
                          extra="tflite", memory_key="tflm_arena", runtimes=("tflite-micro", "tflite-micro (esp-nn)")),
    "pte": FormatEntry("edgekd.formats.pte.format:PteFormat", "ExecuTorch programs: portable FP32, Cortex-M INT8",
                       extra="executorch", memory_key="executorch_plan"),
}
MEMORY_KEYS = tuple(entry.memory_key for entry in FORMATS.values() if entry.memory_key)
RUNTIMES = {runtime: name for name, entry in FORMATS.items() for runtime in entry.runtimes}  # → the format it loads
DEFAULT = "onnx"  # what a file of any other suffix is read as
