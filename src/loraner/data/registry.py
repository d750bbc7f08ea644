"""The reader registry: ``DataConfig.format`` -> reader, and ``load_splits`` on top of it.

Readers are registered at the package edge (``loraner/data/__init__.py``), one call each.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from loraner.data.sampling import sample_splits
from loraner.errors import ConfigError
from loraner.settings import DataConfig
from loraner.types import Example, Span, SpanExample, Splits, WordExample, entity_types

Reader = Callable[[DataConfig], Splits]
# What a reader's examples label: whole words (WordExample, tags per word) or character spans.
Unit = Literal["words", "spans"]


@dataclass(frozen=True)
class ReaderEntry:
    read: Reader
    unit: Unit


_READERS: dict[str, ReaderEntry] = {}


def register_reader(name: str, reader: Reader, *, unit: Unit) -> Reader:
    """Make ``reader`` the one used for ``DataConfig.format == name``."""
    _READERS[name] = ReaderEntry(reader, unit)
    return reader


def supported_formats() -> list[str]:
    return sorted(_READERS)


def _entry(name: str) -> ReaderEntry:
    try:
        return _READERS[name]
    except KeyError:
        raise ConfigError(
            f"data.format: unknown format {name!r}; supported: {', '.join(supported_formats())}"
        ) from None


def get_reader(name: str) -> Reader:
    return _entry(name).read


def reader_unit(name: str) -> Unit:
    """``words`` or ``spans``: what examples of data format ``name`` label."""
    return _entry(name).unit


def load_splits(cfg: DataConfig) -> Splits:
    """Read every split of ``cfg``, rename labels (``cfg.label_map``), then subsample (``cfg.sample``)."""
    splits = get_reader(cfg.format)(cfg)
    if cfg.label_map:
        present = set(entity_types(splits))
        unknown = sorted(set(cfg.label_map) - present)
        if unknown:
            raise ConfigError(
                f"data.label_map: {', '.join(map(repr, unknown))} occur in no split; the data's types are "
                f"{', '.join(sorted(present)) or '(none)'}"
            )
        splits = {name: [relabel(ex, cfg.label_map) for ex in examples] for name, examples in splits.items()}
    if cfg.join_spans:
        joined = frozenset(cfg.join_spans)
        splits = {name: [join_spans(ex, joined) for ex in examples] for name, examples in splits.items()}
    return sample_splits(splits, cfg.sample, cfg.seed)


def join_spans(example: Example, labels: frozenset[str]) -> Example:
    """Neighbouring entities of a type in ``labels`` separated only by spaces (not a line break) become
    one entity: ``[Kari] [Nordmann]`` -> ``[Kari Nordmann]``. Converts data that tags name parts apart to
    the one-span-per-name convention (``loraner data synth``); other types and gaps are left alone."""
    if isinstance(example, WordExample):
        tags = list(example.tags)
        for i in range(1, len(tags)):
            if tags[i].startswith("B-") and tags[i][2:] in labels and tags[i - 1][2:] == tags[i][2:]:
                tags[i] = f"I-{tags[i][2:]}"
        return WordExample(tokens=example.tokens, tags=tags, id=example.id)
    spans: list[Span] = []
    for span in sorted(example.spans, key=lambda s: (s.start, s.end)):
        last = spans[-1] if spans else None
        gap = example.text[last.end : span.start] if last else ""
        if last and span.label == last.label and span.label in labels and gap and not gap.strip(" "):
            spans[-1] = Span(last.start, span.end, span.label)
        else:
            spans.append(span)
    return SpanExample(text=example.text, spans=spans, id=example.id)


def relabel(example: Example, label_map: Mapping[str, str]) -> Example:
    """Rename entity types; mapping a type to ``O`` drops those entities."""
    if isinstance(example, WordExample):
        return WordExample(
            tokens=example.tokens, tags=[_retag(t, label_map) for t in example.tags], id=example.id
        )
    spans = [
        Span(s.start, s.end, label_map.get(s.label, s.label))
        for s in example.spans
        if label_map.get(s.label, s.label) != "O"
    ]
    return SpanExample(text=example.text, spans=spans, id=example.id)


def _retag(tag: str, label_map: Mapping[str, str]) -> str:
    if tag == "O":
        return tag
    new = label_map.get(tag[2:], tag[2:])
    return "O" if new == "O" else f"{tag[:2]}{new}"
