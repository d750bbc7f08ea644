"""``NERPredictor``: raw text in, :class:`~loraner.types.Entity` spans with character offsets out.

>>> predictor = NERPredictor.from_pretrained("runs/quickstart/merged")   # doctest: +SKIP
>>> predictor.predict("José Müller lives in Oslo.")                      # doctest: +SKIP
[Entity(type='PER', text='José Müller', start=0, end=11, score=0.98), ...]

The one windowed inference engine: serving, ``loraner predict``/``deid``, evaluation after training,
validation during training, the export checks and the benchmarks all predict through it, so a score
always describes the entities a user gets.

``predict_batch`` is a pure function of its texts (same texts, same entities, whatever else is in
the batch), which is what Ray Data's ``map_batches`` and the service's micro-batcher rely on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from loraner import defaults
from loraner.data.alignment import Window, special_tokens, windows_for
from loraner.data.words import WORD_SPLITS
from loraner.errors import ConfigError, DataError, ModelError
from loraner.inference.backends import Backend, load_backend
from loraner.inference.decoding import AGGREGATIONS, decode_texts, parse_labels
from loraner.inference.encoding import TokenizedText, length_batches, pad, softmax, tokenize_texts
from loraner.modeldir import ONNX_FILE, ModelDir, ModelMeta
from loraner.settings import o_threshold_problem, window_problem
from loraner.types import Entity, surrogate_problem, types_of_labels

ShouldStop = Callable[[], bool]


class Cancelled(Exception):
    """``should_stop`` said so between two forward passes (the client went away, or time ran out)."""


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


@dataclass(frozen=True)
class TextPrediction:
    """One text's prediction with what it was decoded from: its tokens and, per token, the logits from the
    window that owns the token, and their label probabilities (evaluation scores loss and accuracy on
    them), computed when first read: predicting entities needs only those of each word's first token."""

    entities: list[Entity]
    tokens: TokenizedText
    logits: np.ndarray  # (tokens, labels)

    @cached_property
    def probs(self) -> np.ndarray:  # (tokens, labels)
        return softmax(self.logits) if len(self.logits) else self.logits


@dataclass(frozen=True)
class PredictorSettings:
    """How text becomes windows and batches, and how labels become entities."""

    max_length: int = defaults.MAX_LENGTH.value
    stride: int = defaults.STRIDE.value
    batch_size: int = defaults.BATCH_SIZE.value
    max_batch_tokens: int | None = defaults.MAX_BATCH_TOKENS.value
    aggregation: str = defaults.AGGREGATION.value
    o_threshold: float | None = None
    word_split: str = "tokenizer"


class NERPredictor:
    """Tokenizer + backend + decoding settings. Build one with :meth:`from_pretrained`, or assemble
    it from parts (any object with ``logits(input_ids, attention_mask)`` is a backend)."""

    def __init__(
        self,
        tokenizer: Any,
        backend: Backend,
        labels: Sequence[str],
        *,
        max_length: int = defaults.MAX_LENGTH.value,
        stride: int = defaults.STRIDE.value,
        batch_size: int = defaults.BATCH_SIZE.value,
        max_batch_tokens: int | None = defaults.MAX_BATCH_TOKENS.value,
        aggregation: str = defaults.AGGREGATION.value,
        o_threshold: float | None = None,
        word_split: str = "tokenizer",
        name: str = "model",
        path: str = "",
    ) -> None:
        self.tokenizer = tokenizer
        self.backend = backend
        self.labels = list(labels)
        self.tags = parse_labels(self.labels)
        self.specials = special_tokens(tokenizer)
        self.settings = PredictorSettings(
            int(max_length),
            int(stride),
            int(batch_size),
            None if max_batch_tokens is None else int(max_batch_tokens),
            aggregation,
            o_threshold,
            word_split,
        )
        self.name = name
        self.path = path
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        # The Rust tokenizer is shared state (padding/truncation flags); calls are short, so serialise them.
        self._tokenizer_lock = threading.Lock()
        _check(self.settings, self.specials.count)

    # Read-only views of the settings, for callers and the service's info.
    max_length = property(lambda self: self.settings.max_length)
    stride = property(lambda self: self.settings.stride)
    batch_size = property(lambda self: self.settings.batch_size)
    max_batch_tokens = property(lambda self: self.settings.max_batch_tokens)
    aggregation = property(lambda self: self.settings.aggregation)
    o_threshold = property(lambda self: self.settings.o_threshold)
    word_split = property(lambda self: self.settings.word_split)

    @classmethod
    def from_meta(
        cls, tokenizer: Any, backend: Backend, meta: ModelMeta, *, path: str = "", **settings: Any
    ) -> NERPredictor:
        """A predictor that windows and cuts words as ``meta`` (the model's ``loraner.json``) records;
        ``settings`` are :class:`PredictorSettings` fields for batching and decoding."""
        return cls(
            tokenizer,
            backend,
            meta.labels,
            max_length=meta.window(tokenizer),
            stride=meta.stride,
            word_split=meta.word_split,
            name=meta.name or "model",
            path=path,
            **settings,
        )

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path | ModelDir,
        backend: str = defaults.BACKEND.value,
        device: str = defaults.DEVICE.value,
        *,
        threads: int | None = None,
        max_length: int | None = None,
        stride: int | None = None,
        word_split: str | None = None,
        onnx_file: str = ONNX_FILE,
        base: str | None = None,
        dtype: str = defaults.DTYPE.value,
        compile: bool = defaults.COMPILE.value,
        **settings: Any,
    ) -> NERPredictor:
        """Load a model directory (merged, exported ONNX, a LoRA adapter with its base) or any Hugging
        Face token-classification checkpoint; ``path`` may be a hub id (``OWNER/NAME[@REVISION]``),
        ``pkg:MODULE`` or a :class:`~loraner.modeldir.ModelDir` already opened.

        ``backend``: ``torch``, ``onnx`` (a directory from ``loraner export onnx``) or ``auto`` (the
        fastest runtime the directory offers on this CPU: ``resolve_backend_name``). ``threads`` sets the
        runtime's intra-op threads. ``max_length``, ``stride`` and ``word_split`` override what training
        recorded in ``loraner.json``. ``base``: the base model of a LoRA adapter directory, instead of the
        one it records. ``dtype`` (torch): ``fp32``, ``bf16``, or ``auto`` (the default: bf16 on a CPU with
        native bf16, fp32 elsewhere). ``compile`` (torch): ``torch.compile`` the model on its first call
        (``backends.compile_for_inference``). Other keyword arguments are :class:`PredictorSettings` fields: a
        forward pass takes at most ``batch_size`` windows and ``max_batch_tokens`` padded tokens (``None``:
        no token cap; more memory on long texts).
        """
        model = ModelDir.open(path)  # a hub id (OWNER/NAME[@REVISION]) is downloaded here
        meta = model.meta.with_overrides(max_length=max_length, stride=stride, word_split=word_split)
        tokenizer = model.load_tokenizer()
        runtime = load_backend(
            model, backend, device, threads, onnx_file, base=base, dtype=dtype, compile=compile
        )
        return cls.from_meta(tokenizer, runtime, meta, path=str(model.path), **settings)

    def with_backend(self, backend: Backend) -> NERPredictor:
        """The same tokenizer and settings over another runtime (e.g. the ONNX export of this model)."""
        return NERPredictor(
            self.tokenizer,
            backend,
            self.labels,
            name=self.name,
            path=self.path,
            **vars(self.settings),
        )

    def with_settings(self, **changes: Any) -> NERPredictor:
        """The same model with other :class:`PredictorSettings` (shares tokenizer and backend)."""
        return NERPredictor(
            self.tokenizer,
            self.backend,
            self.labels,
            name=self.name,
            path=self.path,
            **vars(replace(self.settings, **changes)),
        )

    @cached_property
    def version(self) -> str:
        """Which model this is, ``NAME@FINGERPRINT`` (:attr:`ModelDir.version`: the digest of its weights),
        as Label Studio's ``model_version``; the name alone for a predictor assembled in memory."""
        return ModelDir.open(self.path).version if self.path else self.name

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

    def check(self, sample: str = "Kari Nordmann flew from Oslo to Bergen.") -> None:
        """A one-text dry run, made once at load so a mismatched model directory never looks ready:
        the tokenizer's highest id must fit the model's embeddings, and the model must return one score
        per token for each of its labels. Raises :class:`ModelError` naming the mismatch (no path)."""
        vocab = len(self.tokenizer)
        with self._tokenizer_lock:
            [doc] = tokenize_texts(self.tokenizer, [sample], self.word_split)
        room = self.max_length - self.specials.count - 1
        ids = [*self.specials.prefix, vocab - 1, *doc.input_ids[:room], *self.specials.suffix]
        input_ids, mask = pad([ids], self.pad_id)
        try:
            logits = np.asarray(self.backend.logits(input_ids, mask))
        except Exception as exc:
            raise ModelError(
                f"the model failed its dry run ({type(exc).__name__}): the tokenizer has {vocab} tokens; "
                "do the model's embeddings cover them? The tokenizer and the model do not match"
            ) from exc
        embeddings = getattr(self.backend, "vocab_size", None)
        if embeddings is not None and vocab > embeddings:
            raise ModelError(
                f"the tokenizer has {vocab} tokens but the model's embeddings have {embeddings} rows: "
                "the tokenizer and the model do not match"
            )
        if logits.ndim != 3 or logits.shape[:2] != (1, len(ids)):
            raise ModelError(
                f"the model returns scores of shape {tuple(logits.shape)} for 1 window of {len(ids)} tokens"
            )
        if logits.shape[-1] != len(self.labels):
            raise ModelError(
                f"the model returns {logits.shape[-1]} scores per token but its label list has "
                f"{len(self.labels)} labels (config.json id2label / loraner.json labels)"
            )
        if not np.isfinite(logits).all():
            raise ModelError("the model returns non-finite scores (NaN or infinity) on its dry run")

    def predict(self, text: str, *, o_threshold: float | None = None) -> list[Entity]:
        return self.predict_batch([text], o_threshold=o_threshold)[0]

    def predict_batch(
        self, texts: Sequence[str], *, o_threshold: float | None = None, should_stop: ShouldStop | None = None
    ) -> list[list[Entity]]:
        """Entities per text, in input order. Windows of all texts are batched together by length.

        ``o_threshold`` replaces the predictor's own for this call (de-identification passes its own).
        ``should_stop`` is asked before each forward pass; when it answers True the call raises
        :class:`Cancelled` (the service stops work whose client has gone or whose time is up).
        """
        return [
            p.entities for p in self.analyze_batch(texts, o_threshold=o_threshold, should_stop=should_stop)
        ]

    def analyze_batch(
        self, texts: Sequence[str], *, o_threshold: float | None = None, should_stop: ShouldStop | None = None
    ) -> list[TextPrediction]:
        """:meth:`predict_batch` with each text's tokens and token probabilities."""
        return analyze_texts(
            texts,
            [self] * len(texts),
            self._forward,
            batch_size=self.batch_size,
            max_batch_tokens=self.max_batch_tokens,
            o_threshold=o_threshold,
            should_stop=should_stop,
        )

    def _forward(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, row_predictors: Sequence[NERPredictor]
    ) -> np.ndarray:
        return self.backend.logits(input_ids, attention_mask)

    # The steps of the engine loop (analyze_texts) that depend on the model: its tokenizer and word
    # split, its window, its labels and its decoding settings.

    def tokenize(self, texts: Sequence[str]) -> list[TokenizedText]:
        with self._tokenizer_lock:
            return tokenize_texts(self.tokenizer, texts, self.word_split)

    def windows(self, docs: Sequence[TokenizedText]) -> list[Window]:
        """The model-sized windows of ``docs`` that hold tokens (an empty text has nothing to score)."""
        windows = windows_for(docs, self.max_length, self.stride, self.specials)
        return [w for w in windows if w.end > w.start]

    def token_scores(self, docs: Sequence[TokenizedText]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Room for the logits of every token of ``docs``: one array, one text after the other, and each
        text's rows of it (what :meth:`scatter` fills)."""
        scores = np.zeros((sum(len(d.input_ids) for d in docs), len(self.labels)), dtype=np.float32)
        ends = np.cumsum([len(d.input_ids) for d in docs]).tolist()
        return scores, [scores[end - len(d.input_ids) : end] for end, d in zip(ends, docs, strict=True)]

    def scatter(self, scores: list[np.ndarray], window: Window, logits: np.ndarray) -> None:
        """Copy the logits of the tokens ``window`` owns into its document's scores."""
        if logits.shape[-1] != len(self.labels):
            raise ModelError(
                f"the model returns {logits.shape[-1]} labels but {len(self.labels)} are configured"
            )
        first = len(self.specials.prefix) + window.own_start - window.start
        count = window.own_end - window.own_start
        scores[window.doc][window.own_start : window.own_end] = logits[first : first + count]

    def decode(
        self, text: str, doc: TokenizedText, logits: np.ndarray, o_threshold: float | None = None
    ) -> TextPrediction:
        """One text's entities from its tokens' logits; ``o_threshold`` replaces the predictor's own."""
        return self.decode_texts([text], [doc], logits, o_threshold)[0]

    def decode_texts(
        self,
        texts: Sequence[str],
        docs: Sequence[TokenizedText],
        logits: np.ndarray,
        o_threshold: float | None = None,
    ) -> list[TextPrediction]:
        """The entities of several texts from the logits of all their tokens, one text after the other
        (:meth:`token_scores`), decoded at once; ``o_threshold`` replaces the predictor's own."""
        threshold = self.o_threshold if o_threshold is None else o_threshold
        entities = decode_texts(
            texts,
            logits,
            [d.offsets for d in docs],
            [d.word_ids for d in docs],
            self.tags,
            self.aggregation,
            threshold,
        )
        ends = np.cumsum([len(d.input_ids) for d in docs]).tolist()
        return [
            TextPrediction(found, doc, logits[end - len(doc.input_ids) : end])
            for found, doc, end in zip(entities, docs, ends, strict=True)
        ]


# One forward pass over windows of predictors that share a tokenizer: padded ids and mask in, each
# row's logits out; the third argument is the predictor of each row (a multi-adapter pool runs each
# row through its adapter, a single predictor ignores it).
BatchForward = Callable[[np.ndarray, np.ndarray, Sequence[NERPredictor]], Sequence[np.ndarray]]


def analyze_texts(
    texts: Sequence[str],
    predictors: Sequence[NERPredictor],
    forward: BatchForward,
    *,
    batch_size: int,
    max_batch_tokens: int | None,
    o_threshold: float | None = None,
    should_stop: ShouldStop | None = None,
) -> list[TextPrediction]:
    """The engine loop: ``texts[i]`` is tokenized, windowed and decoded by ``predictors[i]``; the windows
    of all texts run through shared forward passes of similar length (at most ``batch_size`` windows and
    ``max_batch_tokens`` padded tokens each). ``o_threshold`` replaces each predictor's own for this
    call; ``should_stop`` is asked before each forward pass (True: :class:`Cancelled`)."""
    problem = o_threshold_problem(o_threshold)
    if problem:
        raise ConfigError(problem)
    check_texts(texts)
    groups: dict[NERPredictor, list[int]] = {}  # the indices of each predictor's texts
    for i, predictor in enumerate(predictors):
        groups.setdefault(predictor, []).append(i)
    docs = {p: p.tokenize([texts[i] for i in indices]) for p, indices in groups.items()}
    tables = {p: p.token_scores(docs[p]) for p in groups}  # each predictor's tokens, and each text's rows
    scores = {p: rows for p, (_, rows) in tables.items()}
    windows = [(p, window) for p in groups for window in p.windows(docs[p])]
    for batch in length_batches([window for _, window in windows], batch_size, max_batch_tokens):
        if should_stop is not None and should_stop():
            raise Cancelled("stopped between forward passes")
        row_predictors = [windows[i][0] for i in batch]
        ids, mask = pad([windows[i][1].ids for i in batch], row_predictors[0].pad_id)
        logits = forward(ids, mask, row_predictors)
        for row, i in enumerate(batch):
            predictor, window = windows[i]
            predictor.scatter(scores[predictor], window, logits[row])
    out: list[TextPrediction | None] = [None] * len(texts)
    for p, indices in groups.items():
        decoded = p.decode_texts([texts[i] for i in indices], docs[p], tables[p][0], o_threshold)
        for i, prediction in zip(indices, decoded, strict=True):
            out[i] = prediction
    return out  # type: ignore[return-value]


def check_texts(texts: Sequence[str]) -> None:
    """A sequence of valid Unicode strings (a lone surrogate cannot be tokenized), or a clear error."""
    if isinstance(texts, str):
        raise TypeError("predict_batch takes a sequence of texts; use predict(text) for one")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is {type(text).__name__}, expected str")
        problem = surrogate_problem(text)
        if problem:
            raise DataError(f"texts[{i}] {problem}")


def _check(settings: PredictorSettings, n_specials: int) -> None:
    problem = window_problem(settings.max_length, settings.stride)
    if problem is None and settings.max_length - n_specials < 2:
        problem = f"max_length {settings.max_length} leaves no room for text between special tokens"
    if problem is None and settings.aggregation not in AGGREGATIONS:
        problem = f"aggregation {settings.aggregation!r} is not one of {', '.join(AGGREGATIONS)}"
    if problem is None and settings.batch_size < 1:
        problem = f"batch_size must be >= 1 (got {settings.batch_size})"
    if problem is None and settings.max_batch_tokens is not None and settings.max_batch_tokens < 1:
        problem = f"max_batch_tokens must be >= 1 or None (got {settings.max_batch_tokens})"
    if problem is None and settings.word_split not in WORD_SPLITS:
        problem = f"word_split {settings.word_split!r} is not one of {', '.join(WORD_SPLITS)}"
    if problem is None:
        problem = o_threshold_problem(settings.o_threshold)
    if problem:
        raise ConfigError(problem)
