"""The model behind a bridge: named as ``loraner predict`` names it, loaded as an :class:`NERPredictor`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loraner import defaults
from loraner.inference.predictor import NERPredictor
from loraner.modeldir import model_or_adapter


def load_predictor(
    model: str | Path | None = None,
    *,
    adapter: str | Path | None = None,
    base: str | None = None,
    backend: str = "auto",
    dtype: str = defaults.DTYPE.value,
    **settings: Any,
) -> NERPredictor:
    """``model``: a merged or exported (ONNX) model directory, a run directory, or a hub id
    ``OWNER/NAME[@REVISION]``; or ``adapter``: a LoRA adapter directory or hub id, on ``base`` (default:
    the base its ``loraner.json`` records). ``settings`` go to :meth:`NERPredictor.from_pretrained`
    (``threads``, ``o_threshold``, ``batch_size``, ...)."""
    source = model_or_adapter(model, adapter, base, spelling="{name}={value}")
    return NERPredictor.from_pretrained(source, backend, base=base, dtype=dtype, **settings)
