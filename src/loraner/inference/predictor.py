"""``NERPredictor``: raw text in, :class:`~loraner.types.Entity` spans with character offsets out.

>>> predictor = NERPredictor.from_pretrained("runs/quickstart/merged")   # doctest: +SKIP
>>> predictor.predict("José Müller lives in Oslo.")                      # doctest: +SKIP
[Entity(type='PER', text='José Müller', start=0, end=11, score=0.98), ...]

``predict_batch`` is a pure function of its texts (same texts, same entities, whatever else is in
the batch), which is what Ray Data's ``map_batches`` and the service's micro-batcher rely on.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from loraner.data.alignment import special_tokens
from loraner.data.words import WORD_SPLITS
from loraner.errors import ConfigError
from loraner.inference.backends import Backend, load_backend, resolve_backend_name
from loraner.inference.decoding import AGGREGATIONS, decode_entities
from loraner.inference.encoding import (
    Chunk,
    TokenizedText,
    length_batches,
    make_chunks,
    pad,
    softmax,
    tokenize_texts,
)
from loraner.inference.model_dir import effective_max_length, load_tokenizer, model_spec
from loraner.types import Entity, types_of_labels

# Padded tokens per forward pass: one 512-token window, or about 16 sentences of 32 tokens. Bounds the
# activation memory of one call (int8 RoBERTa-base: about 50 MB instead of 370 MB for a 3,000-token
# note in one batch of 7 windows), which keeps a served int8 model under 450 MB; see bench/README.md.
DEFAULT_MAX_BATCH_TOKENS = 512


@dataclass(frozen=True)
class ModelInfo:
    """What the service's ``GET /`` and the demo page show about the loaded model."""

    name: str
    labels: list[str]
    backend: str
    max_length: int
    stride: int
    aggregation: str
    word_split: str
    path: str = ""
    types: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "labels": list(self.labels),
            "types": list(self.types or types_of_labels(self.labels)),
            "backend": self.backend,
            "max_length": self.max_length,
            "stride": self.stride,
            "aggregation": self.aggregation,
            "word_split": self.word_split,
        }


class NERPredictor:
    """Tokenizer + backend + decoding settings. Build one with :meth:`from_pretrained`, or assemble
    it from parts (any object with ``logits(input_ids, attention_mask)`` is a backend)."""

    def __init__(
        self,
        tokenizer: Any,
        backend: Backend,
        labels: Sequence[str],
        *,
        max_length: int = 512,
        stride: int = 64,
        batch_size: int = 16,
        max_batch_tokens: int | None = DEFAULT_MAX_BATCH_TOKENS,
        aggregation: str = "first",
        o_threshold: float | None = None,
        word_split: str = "tokenizer",
        name: str = "model",
        path: str = "",
    ) -> None:
        self.tokenizer = tokenizer
        self.backend = backend
        self.labels = list(labels)
        self.specials = special_tokens(tokenizer)
        self.max_length = int(max_length)
        self.stride = int(stride)
        self.batch_size = int(batch_size)
        self.max_batch_tokens = None if max_batch_tokens is None else int(max_batch_tokens)
        self.aggregation = aggregation
        self.o_threshold = o_threshold
        self.word_split = word_split
        self.name = name
        self.path = path
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        # The Rust tokenizer is shared state (padding/truncation flags); calls are short, so serialise them.
        self._tokenizer_lock = threading.Lock()
        self._check()

    def _check(self) -> None:
        if self.aggregation not in AGGREGATIONS:
            raise ConfigError(f"aggregation {self.aggregation!r} is not one of {', '.join(AGGREGATIONS)}")
        if self.max_length - self.specials.count < 2:
            raise ConfigError(f"max_length {self.max_length} leaves no room for text between special tokens")
        if self.stride < 0:
            raise ConfigError(f"stride must be >= 0 (got {self.stride})")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1 (got {self.batch_size})")
        if self.max_batch_tokens is not None and self.max_batch_tokens < 1:
            raise ConfigError(f"max_batch_tokens must be >= 1 or None (got {self.max_batch_tokens})")
        if self.word_split not in WORD_SPLITS:
            raise ConfigError(f"word_split {self.word_split!r} is not one of {', '.join(WORD_SPLITS)}")
        if self.o_threshold is not None and not 0.0 < self.o_threshold <= 1.0:
            raise ConfigError(f"o_threshold must be in (0, 1] (got {self.o_threshold})")

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        backend: str = "auto",
        device: str = "cpu",
        *,
        threads: int | None = None,
        max_length: int | None = None,
        stride: int | None = None,
        batch_size: int = 16,
        max_batch_tokens: int | None = DEFAULT_MAX_BATCH_TOKENS,
        aggregation: str = "first",
        o_threshold: float | None = None,
        word_split: str | None = None,
        onnx_file: str = "model.onnx",
    ) -> NERPredictor:
        """Load a merged/exported model directory or any HF token-classification checkpoint.

        ``backend``: ``torch``, ``onnx`` (a directory from ``loraner export onnx``) or ``auto``
        (ONNX when ``model.onnx`` is present). ``threads`` sets the runtime's intra-op threads.
        A forward pass takes at most ``batch_size`` windows and ``max_batch_tokens`` padded tokens
        (``None``: no token cap; more memory on long texts). ``word_split`` (``conll`` or ``tokenizer``)
        defaults to what training recorded in ``loraner.json``: see :func:`model_dir.word_split_of`.
        """
        spec = model_spec(path, max_length, stride, word_split)
        tokenizer = load_tokenizer(spec)
        runtime = load_backend(spec.path, backend, device, threads, onnx_file)
        return cls(
            tokenizer,
            runtime,
            spec.labels,
            max_length=effective_max_length(spec, tokenizer),
            stride=spec.stride,
            batch_size=batch_size,
            max_batch_tokens=max_batch_tokens,
            aggregation=aggregation,
            o_threshold=o_threshold,
            word_split=spec.word_split,
            name=spec.name,
            path=str(spec.path),
        )

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(
            name=self.name,
            labels=self.labels,
            backend=getattr(self.backend, "name", type(self.backend).__name__),
            max_length=self.max_length,
            stride=self.stride,
            aggregation=self.aggregation,
            word_split=self.word_split,
            path=self.path,
            types=types_of_labels(self.labels),
        )

    def predict(self, text: str) -> list[Entity]:
        return self.predict_batch([text])[0]

    def predict_batch(self, texts: Sequence[str]) -> list[list[Entity]]:
        """Entities per text, in input order. Windows of all texts are batched together by length."""
        if isinstance(texts, str):
            raise TypeError("predict_batch takes a sequence of texts; use predict(text) for one")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}] is {type(text).__name__}, expected str")
        with self._tokenizer_lock:
            docs = tokenize_texts(self.tokenizer, texts, self.word_split)
        probs = self.token_probabilities(docs)
        return [
            decode_entities(
                text, p, doc.offsets, doc.word_ids, self.labels, self.aggregation, self.o_threshold
            )
            for text, doc, p in zip(texts, docs, probs, strict=True)
        ]

    def token_probabilities(self, docs: Sequence[TokenizedText]) -> list[np.ndarray]:
        """Per document, label probabilities of every token, each from the window that owns it."""
        chunks = make_chunks(docs, self.specials, self.max_length, self.stride)
        out = [np.zeros((len(d.input_ids), len(self.labels)), dtype=np.float32) for d in docs]
        for batch in length_batches(chunks, self.batch_size, self.max_batch_tokens):
            logits = self._run([chunks[i] for i in batch])
            for row, i in enumerate(batch):
                self._scatter(out, chunks[i], logits[row])
        return [softmax(p) if len(p) else p for p in out]

    def _run(self, chunks: Sequence[Chunk]) -> np.ndarray:
        ids, mask = pad([c.ids for c in chunks], self.pad_id)
        logits = self.backend.logits(ids, mask)
        if logits.shape[-1] != len(self.labels):
            raise ConfigError(
                f"the model returns {logits.shape[-1]} labels but {len(self.labels)} are configured"
            )
        return logits

    def _scatter(self, out: list[np.ndarray], chunk: Chunk, logits: np.ndarray) -> None:
        first = len(self.specials.prefix) + chunk.own_start - chunk.start
        count = chunk.own_end - chunk.own_start
        out[chunk.doc][chunk.own_start : chunk.own_end] = logits[first : first + count]


def backend_name_for(path: str | Path, backend: str = "auto") -> str:
    """Which runtime ``from_pretrained(path, backend)`` would use (for logs and the service info)."""
    return resolve_backend_name(Path(path), backend)
