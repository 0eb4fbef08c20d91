"""Sizes of a PyTorch module, measured exactly as `edgekd profile` measures its ONNX export."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from edgekd.configs import Precision
from edgekd.formats.onnx.export import export_onnx
from edgekd.formats.onnx.quantize import quantize_static
from edgekd.profile.devices import DeviceProfile
from edgekd.profile.report import (
    GraphFacts,
    ProfileReport,
    analyse_graph,
    profile_model,
)

CALIBRATION_EXAMPLES = 8


def measure_module(module: torch.nn.Module, example: torch.Tensor, input_name: str = "audio") -> GraphFacts:
    """The graph analysis of `edgekd profile`, on an FP32 ONNX export made for the purpose."""
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(module, example, Path(tmp) / "model.onnx", input_name=input_name)
        return analyse_graph(path)[0]


def footprint(module: torch.nn.Module, example: torch.Tensor, device: DeviceProfile,
              precision: Precision, input_name: str = "audio", latency_runs: int = 0) -> ProfileReport:
    """What `edgekd profile --device` reports for the module's export at `precision`, before any training: flash,
    RAM as the device's runtime plans it (TFLM's predicted arena on microcontrollers), MACs, operators and dtypes,
    and host latency over `latency_runs` timed runs.
    INT8 is calibrated on noise shaped like `example` (scaled like it): sizes and the memory plan depend on the
    graph, not on the calibration values."""
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(module, example, Path(tmp) / "model.onnx", input_name=input_name)
        if precision == "int8":
            scale = float(example.abs().max()) or 1.0
            noise = np.random.default_rng(0).standard_normal((CALIBRATION_EXAMPLES, *example.shape[1:]))
            path = quantize_static(path, Path(tmp) / "model.int8.onnx", (scale * noise).astype(np.float32))
        return profile_model(path, device, latency_runs=latency_runs)
