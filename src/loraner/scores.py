"""Precision, recall and F-scores of entity spans: exact start, end and type, per type and micro.

The one scoring rule of the project: evaluation after training, de-identification scores and the int8
export check all count matches this way, so a score means the same thing everywhere.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from loraner.spans import SpanLike, span_type


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, other: Counts) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    def f(self, beta: float = 1.0) -> float:
        return f_beta(self.precision, self.recall, beta)


def f_beta(precision: float, recall: float, beta: float = 1.0) -> float:
    b2 = beta * beta
    denom = b2 * precision + recall
    return (1 + b2) * precision * recall / denom if denom else 0.0


def span_counts(gold: Iterable[SpanLike], pred: Iterable[SpanLike]) -> dict[str, Counts]:
    """Per-type counts for one document: a prediction is a true positive when a gold span has the same
    start, end and type (each gold span matches at most once)."""
    g = Counter((s.start, s.end, span_type(s)) for s in gold)
    p = Counter((s.start, s.end, span_type(s)) for s in pred)
    out: dict[str, Counts] = {}
    for key in g.keys() | p.keys():
        c = out.setdefault(key[2], Counts())
        hit = min(g[key], p[key])
        c.tp += hit
        c.fn += g[key] - hit
        c.fp += p[key] - hit
    return out


def corpus_counts(
    gold: Sequence[Sequence[SpanLike]], pred: Sequence[Sequence[SpanLike]]
) -> dict[str, Counts]:
    """:func:`span_counts` summed over documents (``gold[i]`` and ``pred[i]`` belong to document ``i``)."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold documents but {len(pred)} predicted")
    total: dict[str, Counts] = {}
    for g, p in zip(gold, pred, strict=True):
        for kind, counts in span_counts(g, p).items():
            total.setdefault(kind, Counts()).add(counts)
    return total


def micro(per_type: dict[str, Counts]) -> Counts:
    out = Counts()
    for counts in per_type.values():
        out.add(counts)
    return out


def score_row(c: Counts) -> dict[str, float | int]:
    """P/R/F1/F2 and the counts behind them (F2 weighs recall: a missed name costs more than an extra tag)."""
    return {
        "precision": c.precision,
        "recall": c.recall,
        "f1": c.f(1.0),
        "f2": c.f(2.0),
        "support": c.tp + c.fn,
        "tp": c.tp,
        "fp": c.fp,
        "fn": c.fn,
    }


def entity_f1(reference: Sequence[Sequence[SpanLike]], candidate: Sequence[Sequence[SpanLike]]) -> float:
    """Micro F1 of ``candidate`` against ``reference``; 1.0 when neither has a span (they agree)."""
    total = micro(corpus_counts(reference, candidate))
    if not (total.tp or total.fp or total.fn):
        return 1.0
    return total.f(1.0)
