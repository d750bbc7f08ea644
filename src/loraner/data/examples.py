"""Every example as text with character spans: what evaluation scores and what a user sends.

A word-level example (CoNLL, Few-NERD) becomes its words joined by single spaces, with each IOB2
entity's character span: the text a user would type, so scoring the predictor on it measures the
entities that user gets.
"""

from __future__ import annotations

from loraner.data.schemes import parse_tag, spans_from_tags
from loraner.types import Example, Span, SpanExample


def word_starts(tokens: list[str]) -> list[int]:
    """Character offset of each word in ``" ".join(tokens)``."""
    starts, at = [], 0
    for token in tokens:
        starts.append(at)
        at += len(token) + 1
    return starts


def as_span_example(example: Example) -> SpanExample:
    """Any example as text and character spans: word examples become their words joined by single spaces,
    with each entity's character span (how evaluation scores word-level data)."""
    if isinstance(example, SpanExample):
        return example
    starts = word_starts(example.tokens)
    tags = [parse_tag(t, source=example.id or None) for t in example.tags]
    spans = [
        Span(starts[first], starts[stop - 1] + len(example.tokens[stop - 1]), kind)
        for first, stop, kind in spans_from_tags(tags)
    ]
    return SpanExample(text=" ".join(example.tokens), spans=spans, id=example.id)
