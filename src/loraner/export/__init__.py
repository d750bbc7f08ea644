"""Export: merging adapters, ONNX."""
