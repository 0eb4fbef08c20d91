"""`edgekd export`'s options and their choices, declared once: the command line, the search and export.json (its
`options`, in this order) read them. Each format's own options are its fields here, named after it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from edgekd.configs import FrontendPlacement
from edgekd.errors import EdgekdError
from edgekd.formats.registry import FORMATS

OPSET = 18
OPSET_MAX = 23  # the newest opset checked here with the exporter

CalibrationMethod = Literal["minmax", "entropy", "percentile"]
ActivationType = Literal["uint8", "int8"]
Int8Mode = Literal["static", "dynamic", "none"]
FrontendConstants = Literal["int8", "fp32"]
CortexM = Literal["M0", "M0PLUS", "M3", "M4", "M7", "M23", "M33", "M35P", "M55", "M85"]  # ExecuTorch's targets


@dataclass
class ExportOptions:
    calib: int = 64
    calib_method: CalibrationMethod = "minmax"
    activations: ActivationType = "uint8"
    int8: Int8Mode = "static"
    fp16: bool = True
    frontend: FrontendPlacement = "include"  # include: the model takes raw audio; exclude: it takes log-mel
    frontend_constants: FrontendConstants = "int8"  # INT8 file: DFT/mel stored int8 (flash) or FP32 (RAM)
    opset: int = OPSET
    min_cosine: float = 0.99
    max_accuracy_drop: float = 1.0  # percentage points
    fallback: bool = True
    formats: tuple[str, ...] = ("onnx",)
    int8_output: bool = False  # INT8 .tflite: an int8 output (one scale for the embedding) instead of FP32
    cortex_m: CortexM = "M4"  # INT8 .pte: the Cortex-M core whose CMSIS-NN kernels (and scratch buffers) it gets
    int16x8: bool = False  # also int8 weights with int16 activations (.tflite, .onnx)
    device: str | None = None  # the device a mixed-precision fallback must still fit (its flash and RAM budgets)
    qat_epochs: int | None = None  # quantisation-aware fine-tuning of the finished run first (a run of its own)
    qat_lr: float | None = None  # its learning rate (default: the run's train.lr / 10)

    def __post_init__(self) -> None:
        """A gate that cannot fail (NaN, or a cosine outside [-1, 1]) would pass every model: refused."""
        unknown = [name for name in self.formats if name not in FORMATS]
        if unknown or not self.formats or len(set(self.formats)) != len(self.formats):
            raise EdgekdError(f"--format {','.join(self.formats)}: give one or more of {', '.join(FORMATS)}, "
                              "comma-separated, each once")
        if not (math.isfinite(self.min_cosine) and -1 <= self.min_cosine <= 1):
            raise EdgekdError(f"--min-cosine {self.min_cosine}: give a number between -1 and 1")
        if not (math.isfinite(self.max_accuracy_drop) and self.max_accuracy_drop >= 0):
            raise EdgekdError(f"--max-accuracy-drop {self.max_accuracy_drop}: give a finite number of points ≥ 0")
        if self.int16x8 and self.int8 != "static":
            raise EdgekdError(f"--int16x8 with --int8 {self.int8}: int16 activations are calibrated like static INT8; "
                              "give --int8 static")
        if self.qat_epochs is not None and self.qat_epochs < 1:
            raise EdgekdError(f"--qat-epochs {self.qat_epochs}: give a number of epochs ≥ 1")
        if self.qat_epochs and self.int8 != "static":
            raise EdgekdError(f"--qat-epochs with --int8 {self.int8}: it trains for static INT8; give --int8 static")
        if self.qat_lr is not None and not (math.isfinite(self.qat_lr) and self.qat_lr > 0):
            raise EdgekdError(f"--qat-lr {self.qat_lr}: give a finite learning rate > 0")
        if self.qat_lr is not None and not self.qat_epochs:
            raise EdgekdError(f"--qat-lr {self.qat_lr}: it is quantisation-aware training's rate; add --qat-epochs N")
        if not 17 <= self.opset <= OPSET_MAX:
            raise EdgekdError(f"--opset {self.opset}: the exporter writes opsets 17 to {OPSET_MAX}")
