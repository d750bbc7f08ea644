"""Core value types shared by every layer. Offsets are always character offsets into the original text."""

from __future__ import annotations

from dataclasses import dataclass, field


def surrogate_problem(text: str) -> str | None:
    """Why ``text`` is not valid Unicode (a lone surrogate such as ``"\\ud800"`` from a JSON escape), or
    None. Tokenizers and UTF-8 writers cannot take such a text; every entry point refuses it by this check."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"contains a lone surrogate (U+{ord(text[exc.start]):04X}) at character {exc.start}"
    return None


@dataclass(frozen=True, order=True)
class Span:
    """A gold (or fused) entity annotation: ``text[start:end]`` has type ``label``."""

    start: int
    end: int
    label: str


@dataclass(frozen=True)
class Entity:
    """A predicted entity. ``text == original[start:end]`` always holds."""

    type: str
    text: str
    start: int
    end: int
    score: float = 1.0

    def to_dict(self) -> dict[str, object]:
        return {
            "type": self.type,
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "score": round(float(self.score), 4),
        }


@dataclass
class WordExample:
    """Word-level example: one IOB2 tag per word (readers normalise every scheme to IOB2)."""

    tokens: list[str]
    tags: list[str]
    id: str = ""


@dataclass
class SpanExample:
    """Character-span example: raw text plus non-overlapping, sorted spans."""

    text: str
    spans: list[Span] = field(default_factory=list)
    id: str = ""


Example = WordExample | SpanExample
Splits = dict[str, list[Example]]


def entity_types(splits: Splits) -> list[str]:
    """Sorted entity types seen in any split."""
    types: set[str] = set()
    for examples in splits.values():
        for ex in examples:
            if isinstance(ex, WordExample):
                types.update(t[2:] for t in ex.tags if t != "O")
            else:
                types.update(s.label for s in ex.spans)
    return sorted(types)


def iob2_labels(types: list[str]) -> list[str]:
    """The IOB2 label list for entity ``types``: ``O`` first, then ``B-``/``I-`` per type."""
    labels = ["O"]
    for t in types:
        labels += [f"B-{t}", f"I-{t}"]
    return labels


def types_of_labels(labels: list[str]) -> list[str]:
    """Entity types named by an IOB2 (or IO) label list, in first-seen order."""
    seen: dict[str, None] = {}
    for label in labels:
        if label == "O":
            continue
        seen[label[2:] if label[:2] in ("B-", "I-") else label] = None
    return list(seen)
