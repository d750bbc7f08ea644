"""Inference fixtures: real tokenizers, predictors over fake backends, the tiny model exported to ONNX.

Decoding and offsets are tested with chosen logits (``inference_helpers.TokenLabelBackend``); the
real tiny model is used where only invariants matter (offsets slice the text, batch == singles).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from inference_helpers import IOB2, TokenLabelBackend
from transformers import AutoTokenizer

from loraner.inference import NERPredictor


@pytest.fixture(scope="session")
def roberta_tok(roberta_tokenizer_dir: Path):
    return AutoTokenizer.from_pretrained(str(roberta_tokenizer_dir), add_prefix_space=True)


@pytest.fixture(scope="session")
def bert_tok(minilm_dir: Path):
    return AutoTokenizer.from_pretrained(str(minilm_dir))


@pytest.fixture
def make_predictor(roberta_tok) -> Callable[..., NERPredictor]:
    def make(
        by_id: dict[int, str],
        labels: Sequence[str] = IOB2,
        tokenizer=None,
        high: float = 8.0,
        o_logit: float | None = None,
        **kwargs,
    ) -> NERPredictor:
        backend = TokenLabelBackend(labels, by_id, high, o_logit)
        return NERPredictor(tokenizer or roberta_tok, backend, labels, **kwargs)

    return make
