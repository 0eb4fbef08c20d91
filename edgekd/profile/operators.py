"""What each edge runtime can execute: ONNX op types (as exported) that map onto the runtime's kernels.

None means the runtime executes any ONNX op (onnxruntime). The TFLite Micro set lists ONNX ops that converters
(onnx2tf, ai_edge_torch) lower to TFLM builtin kernels; QDQ pairs become the quantised kernels themselves.
"""

TFLITE_MICRO_OPS = frozenset({
    "Abs", "Add", "AveragePool", "BatchNormalization", "Cast", "Clip", "Concat", "Conv", "ConvTranspose",
    "DepthToSpace", "DequantizeLinear", "Div", "Elu", "Equal", "Exp", "Flatten", "Floor", "Gather", "Gemm",
    "GlobalAveragePool", "GlobalMaxPool", "Greater", "HardSigmoid", "HardSwish", "Identity", "LeakyRelu", "Less",
    "Log", "LogSoftmax", "MatMul", "Max", "MaxPool", "Min", "Mul", "Neg", "PRelu", "Pad", "QuantizeLinear",
    "ReduceMax", "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum", "Relu", "Reshape", "Resize", "Round",
    "Sigmoid", "Sin", "Cos", "Slice", "Softmax", "SpaceToDepth", "Split", "Sqrt", "Squeeze", "Sub", "Tanh",
    "Transpose", "Unsqueeze", "Where",
})

RUNTIME_OPS: dict[str, frozenset[str] | None] = {
    "tflite-micro": TFLITE_MICRO_OPS,
    "tflite-micro (esp-nn)": TFLITE_MICRO_OPS,
    "onnxruntime": None,
    "tensorrt": None,  # TensorRT's ONNX parser covers the standard op set used by exported embedding models
}
# the runtimes that are TFLite Micro (with or without a vendor's kernels): they load .tflite and plan one arena
TFLM_RUNTIMES = frozenset(name for name, ops in RUNTIME_OPS.items() if ops is TFLITE_MICRO_OPS)
