"""ONNX export of a student (front-end included), INT8 quantisation, and verification against PyTorch."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn


OPSET = 18


@contextlib.contextmanager
def quiet():
    """The exporter and the quantiser log progress and advice; users need only our own summary."""
    loggers = [logging.getLogger(), logging.getLogger("torch.onnx")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def export_onnx(module: nn.Module, example: torch.Tensor, path: Path, metadata: dict[str, str] | None = None,
                input_name: str = "audio", output_name: str = "embedding", opset: int = OPSET) -> Path:
    """torch.onnx.export with dynamo (its optimiser folds constants), weights embedded in the one file, a dynamic
    batch axis; the exporter's per-node debug annotations (stack traces, module paths) are dropped: lossless, and
    about 7 % of a small model's file."""
    module = module.eval().cpu()
    path.parent.mkdir(parents=True, exist_ok=True)
    batch = torch.export.Dim("batch", min=1, max=4096)
    example = example.repeat(2, *([1] * (example.dim() - 1))) if example.shape[0] == 1 else example
    tmp = path.with_suffix(".tmp.onnx")
    with quiet():
        program = torch.onnx.export(
            module, (example,), dynamo=True, opset_version=opset, external_data=False, optimize=True,
            input_names=[input_name], output_names=[output_name], dynamic_shapes=({0: batch},), verbose=False,
        )
        program.save(str(tmp), external_data=False)
    model = onnx.load(str(tmp))
    for index, node in enumerate(model.graph.node):
        node.name = node.name or f"{node.op_type}_{index}"  # quantisation excludes nodes by name
        del node.metadata_props[:]
        node.doc_string = ""
    del model.graph.value_info[:]  # intermediate shapes: onnxruntime infers them again
    if metadata:
        onnx.helper.set_model_props(model, {k: str(v) for k, v in metadata.items()})
    onnx.checker.check_model(model)
    onnx.save(model, str(tmp))
    os.replace(tmp, path)
    return path


def run_onnx(path: Path, audio: np.ndarray, batch: int = 32) -> np.ndarray:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: audio[i : i + batch]})[0] for i in range(0, len(audio), batch)])


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
