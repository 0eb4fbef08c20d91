"""`edgekd export`'s options and their choices, declared once: the stage, the quantiser and the CLI read them here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

OPSET = 18

CalibrationMethod = Literal["minmax", "entropy", "percentile"]
ActivationType = Literal["uint8", "int8"]
Int8Mode = Literal["static", "dynamic", "none"]
FrontendPlacement = Literal["include", "exclude"]
FrontendConstants = Literal["int8", "fp32"]


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
