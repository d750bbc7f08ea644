"""``loraner_ner``: a loraner model as a spaCy pipeline component (the ``[spacy]`` extra).

>>> import spacy                                                           # doctest: +SKIP
>>> nlp = spacy.blank("nb")
>>> nlp.add_pipe("loraner_ner", config={"model": "runs/quickstart/merged"})
>>> doc = nlp("Kari Nordmann ble innlagt på Haukeland 12.03.2021.")
>>> [(ent.text, ent.label_, ent._.loraner_score) for ent in doc.ents]
>>> docs = list(nlp.pipe(notes, batch_size=64))   # one predict_batch per 64 notes

spaCy finds the factory through the ``spacy_factories`` entry point, so ``add_pipe`` works after ``pip
install loraner[spacy]`` without importing loraner. The model runs through
:class:`~loraner.inference.NERPredictor` (long texts windowed, never truncated).

Config (``nlp.add_pipe("loraner_ner", config={...})``; stored in the pipeline's ``config.cfg``):

- ``model``: a merged or exported (ONNX) model directory, a run directory or a hub id
  ``OWNER/NAME[@REVISION]``; or ``adapter``: a LoRA adapter directory (or hub id) on ``base`` (default:
  the base it records). ``backend`` (``auto``, ``torch``, ``onnx``), ``dtype`` (``auto``, ``fp32``,
  ``bf16``) and ``o_threshold`` as for ``loraner predict``.
- ``alignment_mode``: what becomes of an entity whose characters do not start and end on spaCy token
  boundaries (the model's words and spaCy's tokens differ: ``kari@example.no`` is one spaCy token, a
  combining accent may follow the model's last character). ``expand`` (default): the tokens it touches;
  ``contract``: the tokens wholly inside it, or, where there is none, the tokens it touches (the entity
  is kept, never dropped); ``split``: spaCy's tokens are split at the entity's edges
  (``doc.retokenize``), so the span has the model's exact offsets (for pipelines whose later components
  accept the changed tokens).
- ``overwrite_ents``: where an entity overlaps one already in ``doc.ents``, keep the model's (true) or
  the existing one (false, the default); existing entities elsewhere are always kept. Model entities
  that collide with each other after alignment (two inside one token) go to ``doc.ents`` by score;
  two that align to the same tokens with the same type are one span.
- ``spans_key``: every model entity, aligned, also goes to ``doc.spans[spans_key]`` (default: the
  component's name), including those the two rules above kept out of ``doc.ents``.
- ``copy_model``: ``nlp.to_disk`` stores the model's path or hub id in ``config.cfg`` and no weights;
  with ``copy_model: true`` it copies the model directory (an adapter's, not its base) into the
  pipeline, ``spacy.load`` loads that copy, and the model is loaded when first needed.

Each entity span's score is ``span._.loraner_score`` (the model's mean label probability over its words).
"""

from __future__ import annotations

import inspect
import logging
import shutil
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

try:
    from spacy.language import Language
    from spacy.tokens import Doc, Span
    from spacy.util import minibatch
except ImportError as exc:  # the extra is not installed
    raise ImportError("loraner.integrations.spacy needs spaCy: pip install 'loraner[spacy]'") from exc

from loraner.errors import ConfigError

if TYPE_CHECKING:
    from loraner.inference.predictor import NERPredictor
    from loraner.types import Entity

__all__ = ["ALIGNMENT_MODES", "FACTORY", "SCORE_EXTENSION", "LoranerNER", "make_loraner_ner", "span_score"]

logger = logging.getLogger(__name__)

FACTORY = "loraner_ner"
SCORE_EXTENSION = "loraner_score"
ALIGNMENT_MODES = ("expand", "contract", "split")
COPIED_MODEL_DIR = "model"  # inside the component's folder of a saved pipeline, with copy_model


def span_score(span: Span) -> float | None:
    """The model's score of ``span`` (its tokens and label), None for a span no loraner model found."""
    return span.doc.user_data.get(_score_key(span))


def _score_key(span: Span) -> tuple[str, str, int, int]:
    # The doc's user data, as spaCy keeps extension values (so the doc saves it, and Doc.from_docs and
    # Span.as_doc move it with the characters), but with the label in the name: spaCy keys its own
    # values by characters alone, so two types on the same tokens would share one score.
    return ("._.", f"{SCORE_EXTENSION}:{span.label_}", span.start_char, span.end_char)


if not Span.has_extension(SCORE_EXTENSION):
    Span.set_extension(SCORE_EXTENSION, getter=span_score)


class LoranerNER:
    """The ``loraner_ner`` component (see the module docstring for its config). spaCy builds it as the
    factory, with ``nlp`` and ``name``; its keyword arguments are the component's config."""

    def __init__(
        self,
        nlp: Language,
        name: str = FACTORY,
        *,
        model: str | None = None,
        adapter: str | None = None,
        base: str | None = None,
        backend: str = "auto",
        dtype: str = "auto",
        o_threshold: float | None = None,
        alignment_mode: str = "expand",
        overwrite_ents: bool = False,
        spans_key: str | None = None,
        copy_model: bool = False,
    ) -> None:
        if alignment_mode not in ALIGNMENT_MODES:
            raise ConfigError(
                f"{name}: alignment_mode {alignment_mode!r} is not one of {', '.join(ALIGNMENT_MODES)}"
            )
        if model is None and adapter is None:
            raise ConfigError(f'{name}: no model: add_pipe("{FACTORY}", config={{"model": DIR_OR_HUB_ID}})')
        self.name = name
        self.source: dict[str, Any] = {
            "model": model,
            "adapter": adapter,
            "base": base,
            "backend": backend,
            "dtype": dtype,
            "o_threshold": o_threshold,
        }
        self.alignment_mode = alignment_mode
        self.overwrite_ents = overwrite_ents
        self.spans_key = spans_key or name
        self.copy_model = copy_model
        self.copied_model: Path | None = None  # set by from_disk when the pipeline holds a copy
        # A pipeline saved with copy_model may be loaded where the original model is not: its copy is
        # known only once from_disk has run, after this constructor.
        self._predictor: NERPredictor | None = None if copy_model else self._load()

    @property
    def predictor(self) -> NERPredictor:
        if self._predictor is None:
            self._predictor = self._load()
        return self._predictor

    def _load(self) -> NERPredictor:
        from loraner.integrations.loading import load_predictor  # torch/transformers only when used

        source = dict(self.source)
        if self.copied_model is not None:
            key = "model" if source["model"] is not None else "adapter"
            source[key] = self.copied_model
        return load_predictor(**source)

    def __call__(self, doc: Doc) -> Doc:
        [entities] = self.predictor.predict_batch([doc.text])
        return self.annotate(doc, entities)

    def pipe(self, docs: Iterable[Doc], batch_size: int = 128) -> Iterator[Doc]:
        """One ``predict_batch`` per ``batch_size`` docs (``nlp.pipe(texts, batch_size=...)``)."""
        for batch in minibatch(docs, size=batch_size):
            found = self.predictor.predict_batch([doc.text for doc in batch])
            for doc, entities in zip(batch, found, strict=True):
                yield self.annotate(doc, entities)

    def annotate(self, doc: Doc, entities: Sequence[Entity]) -> Doc:
        """Write the model's ``entities`` of ``doc.text`` into ``doc.spans`` and ``doc.ents``."""
        if self.alignment_mode == "split":
            split_tokens(doc, [edge for e in entities for edge in (e.start, e.end)])
        spans = aligned_spans(doc, entities, self.alignment_mode)
        doc.spans[self.spans_key] = spans
        by_score = sorted(spans, key=lambda s: -span_score(s))
        first, then = (by_score, list(doc.ents)) if self.overwrite_ents else (list(doc.ents), by_score)
        ents = non_overlapping([*first, *then])
        ours = {id(span) for span in spans}
        left_out = len(spans) - sum(1 for span in ents if id(span) in ours)
        if left_out:
            logger.debug("%s: %d entities overlap others; they are in doc.spans only", self.name, left_out)
        doc.set_ents(sorted(ents, key=lambda s: s.start))
        return doc

    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> None:
        """With ``copy_model``, a copy of the model directory; otherwise nothing (the config names it)."""
        if not self.copy_model:
            return
        target = Path(path) / COPIED_MODEL_DIR
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(self.predictor.path, target)

    def from_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> LoranerNER:
        copied = Path(path) / COPIED_MODEL_DIR
        if self.copy_model and copied.is_dir():
            self.copied_model = copied
            self._predictor = None
        return self


def _config_defaults(component: type) -> dict[str, Any]:
    """The component's keyword arguments with their defaults: what ``config.cfg`` records."""
    parameters = inspect.signature(component).parameters.values()
    return {p.name: p.default for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}


make_loraner_ner = Language.factory(
    FACTORY,
    default_config=_config_defaults(LoranerNER),
    assigns=["doc.ents", "doc.spans", "token.ent_iob", "token.ent_type"],
)(LoranerNER)


def aligned_spans(doc: Doc, entities: Sequence[Entity], mode: str) -> list[Span]:
    """A span per entity, aligned under ``mode``, its score recorded. Entities that align to the same
    tokens with the same type (two inside one token) are one span, with the higher score."""
    best: dict[tuple[int, int, str], tuple[Span, float]] = {}
    for entity in entities:
        span = align(doc, entity, mode)
        key = (span.start, span.end, entity.type)
        if key not in best or entity.score > best[key][1]:
            best[key] = (span, entity.score)
    for span, score in best.values():
        doc.user_data[_score_key(span)] = score
    return [span for span, _ in best.values()]


def align(doc: Doc, entity: Entity, mode: str) -> Span:
    """The span of ``doc`` for ``entity`` under ``mode`` (see the module docstring)."""
    exact = "strict" if mode == "split" else mode  # split_tokens has put the edges on token boundaries
    span = doc.char_span(entity.start, entity.end, label=entity.type, alignment_mode=exact)
    if span is None:  # contract: no token lies wholly inside the entity
        span = doc.char_span(entity.start, entity.end, label=entity.type, alignment_mode="expand")
    if span is None:
        raise ValueError(f"entity [{entity.start}:{entity.end}] touches no token of the doc")
    return span


def split_tokens(doc: Doc, edges: Iterable[int]) -> None:
    """Split each token of ``doc`` at the character offsets in ``edges`` that fall inside it. Of the
    pieces of a token, the last takes over its syntactic head; the others attach to it."""
    starts = [token.idx for token in doc]
    cuts: dict[int, list[int]] = {}
    for edge in sorted(set(edges)):
        i = bisect_right(starts, edge) - 1
        if i >= 0 and starts[i] < edge < starts[i] + len(doc[i].text):
            cuts.setdefault(i, []).append(edge - starts[i])
    if not cuts:
        return
    with doc.retokenize() as retokenizer:
        for i, inner in cuts.items():
            token = doc[i]
            bounds = [0, *inner, len(token.text)]
            orths = [token.text[a:b] for a, b in pairwise(bounds)]
            last = len(orths) - 1
            head = token.head if token.head.i != token.i else (token, last)
            retokenizer.split(token, orths, heads=[*([(token, last)] * last), head])


def non_overlapping(spans: Iterable[Span]) -> list[Span]:
    """``spans`` in order, each kept unless it shares a token with one kept before it."""
    taken: set[int] = set()
    kept = []
    for span in spans:
        tokens = range(span.start, span.end)
        if taken.isdisjoint(tokens):
            taken.update(tokens)
            kept.append(span)
    return kept
