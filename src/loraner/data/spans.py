"""Helpers for character-span examples: overlap resolution and validation."""

from __future__ import annotations

import warnings
from collections.abc import Iterable

from loraner.types import Span


def resolve_overlaps(spans: Iterable[Span]) -> tuple[list[Span], int]:
    """Make spans non-overlapping: keep the longer span; on ties the earlier one.

    "Earlier" means the smaller start, then the earlier position in the input (so for two spans
    over the same characters the first listed wins). A nested span is always shorter than the span
    around it, so this rule keeps the outer span. Returns the kept spans sorted by start, and how
    many were dropped (the caller warns with that count: nothing is dropped silently).
    """
    indexed = list(enumerate(spans))
    ranked = sorted(indexed, key=lambda item: (-(item[1].end - item[1].start), item[1].start, item[0]))
    kept: list[Span] = []
    for _, span in ranked:
        if all(span.end <= k.start or span.start >= k.end for k in kept):
            kept.append(span)
    kept.sort(key=lambda s: (s.start, s.end))
    return kept, len(indexed) - len(kept)


def warn_dropped(source: str, dropped: int, what: str, rule: str) -> None:
    """One warning per file with the count, so data problems are visible but not noisy."""
    if dropped:
        warnings.warn(f"{source}: {dropped} {what} ({rule})", UserWarning, stacklevel=3)
