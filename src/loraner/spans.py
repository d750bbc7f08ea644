"""Span rules shared by every layer: gold annotations (:class:`~loraner.types.Span`, ``label``) and
predictions (:class:`~loraner.types.Entity`, ``type`` and ``score``) alike."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from loraner.types import Entity, Span

SpanLike = Span | Entity
S = TypeVar("S", bound=SpanLike)


def span_type(span: SpanLike) -> str:
    return span.label if isinstance(span, Span) else span.type


def span_score(span: SpanLike) -> float:
    # Gold spans carry no score; treat them as certain.
    return 1.0 if isinstance(span, Span) else float(span.score)


def overlaps(a: SpanLike, b: SpanLike) -> bool:
    """Half-open intervals: spans that only touch (``a.end == b.start``) do not overlap."""
    return a.start < b.end and b.start < a.end


def resolve_overlaps(spans: Iterable[S]) -> list[S]:
    """A non-overlapping subset, sorted by start. Empty spans are dropped (they cannot hold anything and
    would make offsets ambiguous).

    Priority: the longer span; on a tie the higher score, then the smaller start, then the earlier
    position in the input (so of two spans over the same characters the first listed wins, and a nested
    span, always shorter, loses to the span around it). Callers that must not drop silently compare the
    lengths of input and output.
    """
    ranked = sorted(
        (s for s in spans if s.end > s.start),
        key=lambda s: (-(s.end - s.start), -span_score(s), s.start),
    )
    kept: list[S] = []
    for candidate in ranked:
        if not any(overlaps(candidate, k) for k in kept):
            kept.append(candidate)
    return sorted(kept, key=lambda s: (s.start, s.end))
