"""ONNX: export, quantisation, graph walks, host latency and the one onnxruntime session factory."""
