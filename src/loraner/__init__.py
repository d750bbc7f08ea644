"""loraner: LoRA fine-tuning, honest evaluation, merging and fast CPU serving for NER."""

import os

__version__ = "0.1.0"

# ONNX Runtime (1.2x on Linux) starts usage telemetry when it is imported, and writes a device id into
# $HOME: not for a service that reads clinical text. Set here, before any loraner module can import it;
# a caller's own ORT_DISABLE_TELEMETRY wins.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
