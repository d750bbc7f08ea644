"""Inference: ``NERPredictor`` turns a model directory into character-offset entities.

Imports only the core (types, errors), ``data.alignment`` windows and ``export.merge.read_meta``;
torch is imported lazily by the torch backend alone.
"""

from loraner.inference.backends import Backend, OnnxBackend, TorchBackend, load_backend
from loraner.inference.decoding import AGGREGATIONS, decode_entities
from loraner.inference.predictor import ModelInfo, NERPredictor

__all__ = [
    "AGGREGATIONS",
    "Backend",
    "ModelInfo",
    "NERPredictor",
    "OnnxBackend",
    "TorchBackend",
    "decode_entities",
    "load_backend",
]
