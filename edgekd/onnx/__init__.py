"""ONNX: export, quantisation, graph walks and the one onnxruntime session factory."""
