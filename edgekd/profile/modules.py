"""Sizes of a PyTorch module, measured exactly as `edgekd profile` measures its FP32 ONNX export."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from edgekd.onnx.export import export_onnx
from edgekd.profile.report import GraphFacts, analyse_graph


def measure_module(module: torch.nn.Module, example: torch.Tensor, input_name: str = "audio") -> GraphFacts:
    """The graph analysis of `edgekd profile`, on an FP32 ONNX export made for the purpose."""
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(module, example, Path(tmp) / "model.onnx", input_name=input_name)
        return analyse_graph(path)[0]
