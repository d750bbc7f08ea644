"""Inference: the one windowed engine. ``NERPredictor`` turns a model directory (or a model in memory)
into character-offset entities for serving, evaluation, training-time validation and export checks.

Imports the core, ``data`` (windows, word splits, tag decoding) and ``modeldir``; torch is imported
lazily by the torch backend alone, so the ONNX service runs without it.
"""

from loraner.inference.backends import (
    BACKENDS,
    Backend,
    BackendName,
    OnnxBackend,
    OpenVinoBackend,
    TorchBackend,
    load_backend,
)
from loraner.inference.decoding import AGGREGATIONS, Aggregation, decode_entities
from loraner.inference.predictor import ModelInfo, NERPredictor, TextPrediction

__all__ = [
    "AGGREGATIONS",
    "BACKENDS",
    "Aggregation",
    "Backend",
    "BackendName",
    "ModelInfo",
    "NERPredictor",
    "OnnxBackend",
    "OpenVinoBackend",
    "TextPrediction",
    "TorchBackend",
    "decode_entities",
    "load_backend",
]
