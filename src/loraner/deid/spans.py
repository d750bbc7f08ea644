"""Span checks and clean-up for de-identification (the overlap rules are :mod:`loraner.spans`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from loraner.errors import DataError
from loraner.spans import SpanLike, span_type
from loraner.types import Entity


def check_spans(text: str, spans: Sequence[SpanLike], *, source: str = "spans") -> None:
    """Raise :class:`DataError` for offsets outside ``text`` or entity text that does not match.

    Messages name the index, type and offsets only: the document text is sensitive and never echoed.
    """
    for i, span in enumerate(spans):
        if not 0 <= span.start <= span.end <= len(text):
            raise DataError(
                f"span {i} ({span_type(span)} {span.start}-{span.end}) lies outside the text "
                f"(length {len(text)})",
                source=source,
            )
        if isinstance(span, Entity) and text[span.start : span.end] != span.text:
            raise DataError(
                f"entity {i} ({span.type} {span.start}-{span.end}): its text does not match the document "
                "at those offsets",
                source=source,
            )


_OPENERS, _CLOSERS = "([{", ")]}"
_EDGE_JUNK = " \t\r\n\f\v,;:"


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    """``start, end`` without separators at the edges, nor a bracket whose partner is outside the span."""
    while True:
        before = (start, end)
        while start < end and text[start] in _EDGE_JUNK:
            start += 1
        while end > start and text[end - 1] in _EDGE_JUNK:
            end -= 1
        piece = text[start:end]
        if piece and piece[0] in _OPENERS and _CLOSERS[_OPENERS.index(piece[0])] not in piece:
            start += 1
        if piece and piece[-1] in _CLOSERS and _OPENERS[_CLOSERS.index(piece[-1])] not in piece:
            end -= 1
        if (start, end) == before:
            return start, end


def tidy_spans(text: str, entities: Iterable[Entity]) -> list[Entity]:
    """Model entities cut at line breaks, without separators (``,;:`` and spaces) or unpaired brackets at
    their edges; pieces with no letter or digit are dropped.

    Why: the clinical notes' PHI never spans a line break (1 gold span in 11,781) and almost never starts
    or ends with punctuation, but a token classifier's spans do: "02637889350 \\n\\n30", "sykehus,", ")".
    Each such span is a false positive *and* a missed gold span under exact-span scoring.
    """
    out = []
    for entity in entities:
        at = entity.start
        for line in text[entity.start : entity.end].splitlines(keepends=True):
            start, end = _trimmed(text, at, at + len(line))
            at += len(line)
            if any(ch.isalnum() for ch in text[start:end]):
                out.append(Entity(entity.type, text[start:end], start, end, entity.score))
    return out
