"""De-identification metrics (pure Python): entity P/R/F1/F2 and character-level PHI recall with leaks.

Entity scores judge the detector (exact start, end and type). Character recall judges the *output*: the
share of gold PHI characters (whitespace excluded) inside a span whose operator changed it, whatever type
the detector gave it, since a name tagged LOC is still hidden. ``keep`` protects nothing, and characters a
``mask`` left visible (``keep_last``) are not protected either.

Leak lists contain raw PHI: they are for the local report only, never for logs or shared artefacts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from loraner.deid.engine import DeidResult
from loraner.scores import Counts, micro, score_row, span_counts
from loraner.spans import SpanLike, span_type


@dataclass(frozen=True)
class Leak:
    """A gold PHI span whose characters are not all protected. Contains PHI: local reports only."""

    type: str
    text: str
    start: int
    end: int
    intact_chars: int
    fully: bool


def protected_positions(text: str, result: DeidResult) -> set[int]:
    """Original-text positions whose character the output no longer shows."""
    positions: set[int] = set()
    for item in result.items:
        if item.operator == "keep":
            continue
        same_length = item.operator == "mask" and len(item.replacement) == item.end - item.start
        for i in range(item.start, item.end):
            if same_length and item.replacement[i - item.start] == text[i]:
                continue  # left visible by the mask
            positions.add(i)
    return positions


def _phi_positions(text: str, span: SpanLike) -> list[int]:
    return [i for i in range(span.start, span.end) if not text[i].isspace()]


@dataclass
class CharCounts:
    phi: int = 0
    protected: int = 0


@dataclass
class DocumentChars:
    overall: CharCounts = field(default_factory=CharCounts)
    per_type: dict[str, CharCounts] = field(default_factory=dict)
    leaks: list[Leak] = field(default_factory=list)


def char_coverage(text: str, gold: Sequence[SpanLike], result: DeidResult) -> DocumentChars:
    """Character counts and leaks for one document. Overlapping gold spans count a character once overall."""
    protected = protected_positions(text, result)
    doc = DocumentChars()
    all_phi: set[int] = set()
    for span in gold:
        kind = span_type(span)
        positions = _phi_positions(text, span)
        hidden = sum(i in protected for i in positions)
        counts = doc.per_type.setdefault(kind, CharCounts())
        counts.phi += len(positions)
        counts.protected += hidden
        all_phi.update(positions)
        if hidden < len(positions):
            intact = len(positions) - hidden
            leak = Leak(kind, text[span.start : span.end], span.start, span.end, intact, hidden == 0)
            doc.leaks.append(leak)
    doc.overall = CharCounts(len(all_phi), len(all_phi & protected))
    return doc


def _ratio(c: CharCounts) -> float:
    # No PHI at all means nothing could leak: recall 1.0, not a division error.
    return c.protected / c.phi if c.phi else 1.0


class DeidEvaluator:
    """Accumulates entity and character counts over documents; :meth:`summary` reports the totals.

    ``pred`` are the spans that were de-identified (model spans after fusion) and ``result`` the output of
    :func:`~loraner.deid.engine.deidentify` on them.
    """

    def __init__(self) -> None:
        self.documents = 0
        self.entities: dict[str, Counts] = {}
        self.chars = CharCounts()
        self.chars_per_type: dict[str, CharCounts] = {}
        self.leaks: list[Leak] = []

    def add(self, text: str, gold: Sequence[SpanLike], pred: Sequence[SpanLike], result: DeidResult) -> None:
        self.documents += 1
        for kind, counts in span_counts(gold, pred).items():
            self.entities.setdefault(kind, Counts()).add(counts)
        doc = char_coverage(text, gold, result)
        self.chars.phi += doc.overall.phi
        self.chars.protected += doc.overall.protected
        for kind, c in doc.per_type.items():
            total = self.chars_per_type.setdefault(kind, CharCounts())
            total.phi += c.phi
            total.protected += c.protected
        self.leaks += doc.leaks

    def summary(self, *, include_leaks: bool = True) -> dict[str, object]:
        out: dict[str, object] = {
            "documents": self.documents,
            "entity": {
                "per_type": {k: score_row(self.entities[k]) for k in sorted(self.entities)},
                "micro": score_row(micro(self.entities)),
            },
            "char_recall": _ratio(self.chars),
            "char_recall_per_type": {k: _ratio(self.chars_per_type[k]) for k in sorted(self.chars_per_type)},
            "phi_chars": self.chars.phi,
            "protected_chars": self.chars.protected,
            "leak_count": len(self.leaks),
        }
        if include_leaks:
            out["leaks"] = [asdict(leak) for leak in self.leaks]
        return out


def evaluate_document(
    text: str, gold: Sequence[SpanLike], pred: Sequence[SpanLike], result: DeidResult
) -> dict[str, object]:
    """:meth:`DeidEvaluator.summary` for a single document."""
    ev = DeidEvaluator()
    ev.add(text, gold, pred, result)
    return ev.summary()
