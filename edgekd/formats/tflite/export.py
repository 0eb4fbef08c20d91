"""PyTorch → `.tflite`: FP32 through litert-torch (no TensorFlow), then full integer (int8 weights; int8 or int16
activations and input, per layer where asked; the last operator and the output FP32) through Google's AI Edge
Quantizer, calibrated on the recipe's domain windows.

Why not litert-torch's own PT2E quantisation: with it the file kept FP32 weights beside Dequantize ops (larger than
FP32, and TFLM expanded the weights into its arena), or the converter rejected per-channel weights; the AI Edge
Quantizer works on the FP32 flatbuffer and gives what TFLM's int8 kernels run (measured on the demo student's
body: 118 kB and a 38 kB arena, against 421 kB and 136 kB in FP32)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

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


# Of a layer (an operator of the FP32 file): int8 weights with int8 or int16 activations, or left in FP32
Precision = Literal["int8", "int16x8", "fp32"]
SHAPE_ONLY = frozenset({"RESHAPE", "TRANSPOSE", "SQUEEZE", "EXPAND_DIMS"})  # move values, compute nothing


@dataclass(frozen=True)
class Layer:
    index: int  # in the FP32 file's operators
    op: str
    output: str  # its output tensor's name: what the quantizer's recipe matches

    @property
    def label(self) -> str:
        return "input" if self.index == INPUT else f"#{self.index} {self.op}"


INPUT = -1  # the index of the model's input among the layers


class TfliteQuantizer:
    """An FP32 `.tflite` calibrated once (activation ranges from running `calibration` through it: rows shaped like
    the model's input without its batch axis), then quantised to any precision per layer: full integer with int8
    weights and int8 or int16 activations (TFLM's int16x8 kernels), layers named in `layers` at another precision.
    Unless `int8_output`, the last operator (the embedding's pooling or projection) stays FP32 and so does the
    output: one int8 scale for the whole embedding cost the demo student 0.02 of mean cosine (0.975 → 0.995), at no
    cost in arena."""

    def __init__(self, fp32: Path, calibration: np.ndarray, int8_output: bool = False):
        self._aeq = _require("ai_edge_quantizer")
        self.fp32, self.int8_output = fp32, int8_output
        source = fp32.read_bytes()
        model = flatbuffer.unpack(source, NEEDED_FOR)
        graph = model.subgraphs[0]
        # the model's input is a layer too: its quantisation is the first rounding every value goes through
        self.layers = [Layer(INPUT, "INPUT", graph.tensors[graph.inputs[0]].name.decode(errors="replace"))] + [
            Layer(index, flatbuffer.op_type(model, op, NEEDED_FOR), graph.tensors[op.outputs[0]].name.decode(
                errors="replace")) for index, op in enumerate(graph.operators)]
        self._producer = {int(out): index for index, op in enumerate(graph.operators) for out in op.outputs} | {
            int(graph.inputs[0]): INPUT}
        self._inputs = [[int(i) for i in op.inputs] for op in graph.operators]
        interpreter = _require("ai_edge_litert.interpreter").Interpreter(model_path=str(fp32))
        signature, details = next(iter(interpreter.get_signature_list().items()))
        (input_name,) = details["inputs"]
        # the true minimum and maximum over the windows, as ONNX's minmax calibration: the quantizer's default moving
        # average kept the log-mel input's range at [-49, 0] dB of its [-75, 0] and clipped quiet windows (cosine
        # 0.80). Calibrated once for every tensor: the ranges do not depend on the precision later asked for.
        calibrator = _require("ai_edge_quantizer.calibrator").Calibrator(
            source, num_threads=os.cpu_count() or 1,
            qsv_update_func=_require("ai_edge_quantizer.utils.qsv_utils").min_max_update)
        calibrator.calibrate({signature: [{input_name: row[None].astype(np.float32)} for row in calibration]},
                             self._quantizer("int8", {})._recipe_manager)  # noqa: SLF001 - the recipe it follows
        self._ranges = calibrator.get_model_qsvs()

    @property
    def tail(self) -> Layer | None:
        """The last operator, kept FP32 (unless int8_output) whatever the assignment."""
        last = self.layers[-1]
        known = last.op in self._aeq.qtyping.TFLOperationName.__members__
        return last if known and not self.int8_output else None

    def quantize(self, out: Path, activations: Precision = "int8", layers: dict[int, Precision] | None = None
                 ) -> Path:
        """The file with `activations` for every layer but those in `layers` (index → precision); a shape-only
        operator takes its input's precision, so that no requantisation is inserted around it."""
        layers = self._spread(activations, layers or {})
        model = self._quantizer(activations, layers).quantize(self._ranges, enable_progress_report=False)
        quantised = _for_tflm(model.quantized_model, keep_output_quantize=self.int8_output)
        return atomic_write(out, lambda handle: handle.write(quantised))

    def _spread(self, activations: Precision, layers: dict[int, Precision]) -> dict[int, Precision]:
        spread = dict(layers)
        for layer in self.layers:
            if layer.op in SHAPE_ONLY and layer.index not in layers:
                producers = [self._producer[i] for i in self._inputs[layer.index][:1] if i in self._producer]
                spread[layer.index] = spread.get(producers[0], activations) if producers else activations
        return spread

    def _quantizer(self, activations: Precision, layers: dict[int, Precision]):
        aeq = self._aeq
        quantizer = aeq.Quantizer(str(self.fp32))
        quantizer.load_quantization_recipe(aeq.recipe.static_wi8_ai16() if activations == "int16x8" else
                                           aeq.recipe.static_wi8_ai8())
        tail = self.tail
        for index, precision in [*layers.items(), *([(tail.index, "fp32")] if tail else [])]:
            layer = self.layers[index + 1]  # after the input
            if layer.op not in aeq.qtyping.TFLOperationName.__members__:
                continue  # an operator the quantizer does not know keeps the precision it gives it
            regex, op = re.escape(layer.output), getattr(aeq.qtyping.TFLOperationName, layer.op)
            if precision == "fp32":
                quantizer.update_quantization_recipe(regex=regex, operation_name=op, algorithm_key="no_quantize")
            else:
                quantizer.add_static_config(regex=regex, operation_name=op, weight_num_bits=8,
                                            activation_num_bits=16 if precision == "int16x8" else 8)
        return quantizer


def quantize_tflite(fp32: Path, out: Path, calibration: np.ndarray, int8_output: bool = False) -> Path:
    """Full-integer INT8 `.tflite` of an FP32 one (see `TfliteQuantizer`)."""
    return TfliteQuantizer(fp32, calibration, int8_output).quantize(out)


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
