"""ONNX export of a PyTorch module (a student with its front-end, or a teacher to measure)."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from edgekd.files import atomic_save
from edgekd.formats.options import OPSET

# The loggers the exporter and the quantiser report progress and advice on (onnxruntime's quantiser logs on the
# root logger); users need only edgekd's own summary.
_CHATTY_LOGGERS = ("", "torch.onnx", "torch.export", "onnxscript", "onnx_ir")


@contextlib.contextmanager
def quiet():
    """Silence the exporter's and the quantiser's own output for the duration of one call: their loggers, their
    warnings and the progress they print; everything is restored on exit."""
    loggers = [logging.getLogger(name) for name in _CHATTY_LOGGERS]
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
    batch = torch.export.Dim("batch", min=1, max=4096)
    example = example.repeat(2, *([1] * (example.dim() - 1))) if example.shape[0] == 1 else example
    with quiet():
        program = torch.onnx.export(
            module, (example,), dynamo=True, opset_version=opset, external_data=False, optimize=True,
            input_names=[input_name], output_names=[output_name], dynamic_shapes=({0: batch},), verbose=False,
        )
    model = program.model_proto
    for index, node in enumerate(model.graph.node):
        node.name = node.name or f"{node.op_type}_{index}"  # quantisation excludes nodes by name
        del node.metadata_props[:]
        node.doc_string = ""
    del model.graph.value_info[:]  # intermediate shapes: onnxruntime infers them again
    if metadata:
        onnx.helper.set_model_props(model, {k: str(v) for k, v in metadata.items()})
    onnx.checker.check_model(model)
    return atomic_save(path, lambda tmp: onnx.save(model, str(tmp)))
