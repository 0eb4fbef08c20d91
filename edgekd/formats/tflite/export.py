"""PyTorch → `.tflite`: FP32 through litert-torch (no TensorFlow), then INT8 (int8 weights, activations and input;
the last operator and the output FP32) through Google's AI Edge Quantizer, calibrated on the recipe's domain
windows.

Why not litert-torch's own PT2E quantisation: with it the file kept FP32 weights beside Dequantize ops (larger than
FP32, and TFLM expanded the weights into its arena), or the converter rejected per-channel weights; the AI Edge
Quantizer works on the FP32 flatbuffer and gives what TFLM's int8 kernels run (measured on the demo student's
body: 118 kB and a 38 kB arena, against 421 kB and 136 kB in FP32)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgekd.extras import require
from edgekd.files import atomic_save, atomic_write
from edgekd.formats.tflite import flatbuffer


def convert_tflite(module: nn.Module, example: torch.Tensor, path: Path) -> Path:
    """An FP32 `.tflite` of `module` for inputs shaped like `example` (batch 1: microcontrollers run one window)."""
    litert_torch = _require("litert_torch")
    converted = litert_torch.convert(module.eval(), (example[:1],))
    return atomic_save(path, lambda tmp: converted.export(str(tmp)))


def quantize_tflite(fp32: Path, out: Path, calibration: np.ndarray, int8_output: bool = False) -> Path:
    """INT8 of an FP32 `.tflite`: int8 weights, activations and input, activation ranges from running
    `calibration` (rows shaped like the model's input without its batch axis) through it. Unless `int8_output`, the
    last operator (the embedding's pooling or projection) stays FP32 and so does the output: one int8 scale for the
    whole embedding cost the demo student 0.02 of mean cosine (0.975 → 0.995), at no cost in arena."""
    quantizer_module = _require("ai_edge_quantizer")
    interpreter = _require("ai_edge_litert.interpreter").Interpreter(model_path=str(fp32))
    signature, details = next(iter(interpreter.get_signature_list().items()))
    (input_name,) = details["inputs"]
    source = fp32.read_bytes()
    float_model = flatbuffer.unpack(source, NEEDED_FOR)
    last = float_model.subgraphs[0].operators[-1]
    last_op = flatbuffer.op_type(float_model, last, NEEDED_FOR)
    quantizer = quantizer_module.Quantizer(str(fp32))
    quantizer.load_quantization_recipe(quantizer_module.recipe.static_wi8_ai8())
    if not int8_output and last_op in quantizer_module.qtyping.TFLOperationName.__members__:
        last_output = float_model.subgraphs[0].tensors[last.outputs[0]].name.decode(errors="replace")
        quantizer.update_quantization_recipe(regex=re.escape(last_output), operation_name=getattr(
            quantizer_module.qtyping.TFLOperationName, last_op), algorithm_key="no_quantize")
    # the true minimum and maximum over the windows, as ONNX's minmax calibration: the quantizer's default moving
    # average kept the log-mel input's range at [-49, 0] dB of its [-75, 0] and clipped quiet windows (cosine 0.80)
    calibrator = _require("ai_edge_quantizer.calibrator").Calibrator(
        source, num_threads=os.cpu_count() or 1,
        qsv_update_func=_require("ai_edge_quantizer.utils.qsv_utils").min_max_update)
    calibrator.calibrate({signature: [{input_name: row[None].astype(np.float32)} for row in calibration]},
                         quantizer._recipe_manager)  # noqa: SLF001 - the recipe the calibrator must follow
    model = quantizer.quantize(calibrator.get_model_qsvs(), enable_progress_report=False).quantized_model
    return atomic_write(out, lambda handle: handle.write(_for_tflm(model, keep_output_quantize=int8_output)))


NEEDED_FOR = "--format tflite"


def _require(module: str):
    return require(module, NEEDED_FOR, "tflite")


def _for_tflm(quantised: bytes, keep_output_quantize: bool) -> bytes:
    """The quantizer's model as TFLM must get it, read and written once:
    - every weight inside the flatbuffer: the quantizer may store buffers after it (by offset and size), which TFLM
      takes for activations and plans in its arena, uninitialised (measured on sea-student-3: +396 kB of arena,
      exactly its conv filters);
    - without the QUANTIZE the quantizer appends to keep the output int8 after the float last operator."""
    model = flatbuffer.unpack(quantised, NEEDED_FOR)
    outside = [buffer for buffer in model.buffers if buffer.data is None and buffer.offset > 1]
    for buffer in outside:
        buffer.data = np.frombuffer(quantised, np.uint8, buffer.size, buffer.offset)
        buffer.offset = buffer.size = 0
    graph = model.subgraphs[0]
    last = graph.operators[-1]
    float_output = (not keep_output_quantize and flatbuffer.op_type(model, last, NEEDED_FOR) == "QUANTIZE"
                    and graph.tensors[last.inputs[0]].type == flatbuffer.schema(NEEDED_FOR).TensorType.FLOAT32)
    if float_output:
        output = int(last.inputs[0])
        graph.operators = graph.operators[:-1]
        graph.outputs = [output]
        for signature in model.signatureDefs or []:
            for tensor in signature.outputs:
                tensor.tensorIndex = output
    return flatbuffer.pack(model, NEEDED_FOR) if outside or float_output else quantised
