"""The unlabelled texts worth annotating next (``loraner rank``): a pool ordered by the model's uncertainty
(:mod:`loraner.inference.uncertainty`), the most uncertain first, with a diversity guard so the top N
are not near-duplicates of each other.

The guard is greedy: texts are taken in order of uncertainty, and one is passed over when its word
bigrams (lower-cased, digits as ``0``) overlap those of a text already taken by a Jaccard similarity of
at least ``max_similarity``. News wires and clinical notes repeat templates (a results table's rows
"Essex 532-8 v Surrey" and "Essex 210-4 v Surrey", "Seen by Dr X on DATE") whose copies the model finds
equally hard; annotating one teaches what annotating ten would. Comparisons are against the texts
taken only, so the cost is about N² set intersections, not pool².
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from loraner.errors import DataError
from loraner.inference.uncertainty import Confidence, Measure, confidence, uncertainty
from loraner.jobs.documents import Document
from loraner.jobs.run import CHUNK_ROWS, chunks
from loraner.types import Entity

WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)
DIGITS = re.compile(r"\d")
DEFAULT_MAX_SIMILARITY = 0.7


@dataclass(frozen=True)
class Ranked:
    """One text of the pool as ranked: its place in the input (``index``), the model's entities, its
    confidence and the uncertainty it was ordered by."""

    index: int
    document: Document
    entities: list[Entity]
    confidence: Confidence
    uncertainty: float


@dataclass
class Ranking:
    """The top texts, most uncertain first, and what the guard passed over: ``duplicates`` holds the pool
    index of each text passed over and the index of the text taken that it repeats."""

    top: list[Ranked]
    pool: int
    measure: Measure
    max_similarity: float
    duplicates: list[tuple[int, int]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        picked_words = [r.confidence.words for r in self.top]
        return {
            "pool": self.pool,
            "picked": len(self.top),
            "measure": self.measure,
            "max_similarity": self.max_similarity,
            "near_duplicates_passed_over": len(self.duplicates),
            "mean_words_picked": round(sum(picked_words) / len(picked_words), 1) if picked_words else 0.0,
        }


def shingles(text: str) -> frozenset[str]:
    """The word bigrams of ``text`` (words alone for a one-word text), lower-cased, digits as ``0``."""
    words = [DIGITS.sub("0", w.lower()) for w in WORD.findall(text)]
    if len(words) < 2:
        return frozenset(words)
    return frozenset(f"{a} {b}" for a, b in pairwise(words))


def similarity(a: frozenset[str], b: frozenset[str]) -> float:
    """Jaccard similarity of two shingle sets (1.0 for two empty ones: both say nothing)."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def analyse(
    predictor: Any, documents: Sequence[Document], advance: Callable[[int], Any] | None = None
) -> list[tuple[list[Entity], Confidence]]:
    """Entities and confidence of every document, in chunks through the one engine."""
    aggregation = str(getattr(predictor, "aggregation", "first"))
    out: list[tuple[list[Entity], Confidence]] = []
    for chunk in chunks(documents, CHUNK_ROWS):
        texts = [d.text or "" for d in chunk]
        for text, analysis in zip(texts, predictor.analyze_batch(texts), strict=True):
            out.append((analysis.entities, confidence(text, analysis, aggregation)))
        if advance is not None:
            advance(len(chunk))
    return out


def rank(
    predictor: Any,
    documents: Iterable[Document],
    top: int,
    *,
    measure: Measure = "sequence",
    max_similarity: float = DEFAULT_MAX_SIMILARITY,
    advance: Callable[[int], Any] | None = None,
) -> Ranking:
    """The ``top`` most uncertain documents by ``measure``, no two near-duplicates (``max_similarity``
    1.0 turns the guard off but for exact copies). Every document must be good: a bad row is a
    :class:`DataError` naming its line."""
    if top < 1:
        raise ValueError("top must be at least 1")
    if not 0.0 < max_similarity <= 1.0:
        raise ValueError("max_similarity must be in (0, 1]")
    pool = list(documents)
    for document in pool:
        if document.error:
            raise DataError(document.error)
    analysed = analyse(predictor, pool, advance)
    scored = [
        Ranked(i, document, entities, conf, uncertainty(conf, measure))
        for i, (document, (entities, conf)) in enumerate(zip(pool, analysed, strict=True))
    ]
    # Most uncertain first; ties keep input order, so a ranking is reproducible.
    scored.sort(key=lambda r: (-r.uncertainty, r.index))
    ranking = Ranking([], len(pool), measure, max_similarity)
    taken: list[tuple[int, frozenset[str]]] = []
    for candidate in scored:
        if len(ranking.top) == top:
            break
        own = shingles(candidate.document.text or "")
        twin = next((i for i, other in taken if similarity(own, other) >= max_similarity), None)
        if twin is not None:
            ranking.duplicates.append((candidate.index, twin))
            continue
        taken.append((candidate.index, own))
        ranking.top.append(candidate)
    return ranking
