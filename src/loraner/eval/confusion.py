"""Confusion between entity types.

Each gold entity is paired with the predicted entity that overlaps it most (any overlap counts, so a
boundary error still shows which type was chosen). Gold entities with no overlapping prediction land in
the ``MISSED`` column; predictions that overlap no gold entity land in the ``SPURIOUS`` row.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from loraner.spans import SpanLike, overlaps, span_type

MISSED = "MISSED"
SPURIOUS = "SPURIOUS"


@dataclass
class TypeConfusion:
    """Counts of (gold type → predicted type).

    Rows are ``labels + [SPURIOUS]`` (gold side), columns are ``labels + [MISSED]`` (predicted side);
    ``matrix[i][j]`` is the count for ``row_labels[i]`` → ``col_labels[j]``.
    """

    labels: list[str]
    matrix: list[list[int]]

    @property
    def row_labels(self) -> list[str]:
        return [*self.labels, SPURIOUS]

    @property
    def col_labels(self) -> list[str]:
        return [*self.labels, MISSED]

    def count(self, gold: str, pred: str) -> int:
        return self.matrix[self.row_labels.index(gold)][self.col_labels.index(pred)]

    def to_csv(self, path: str | Path) -> Path:
        """Write ``gold\\pred,<types>,MISSED`` then one row per gold type and the SPURIOUS row."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(["gold\\pred", *self.col_labels])
            for name, row in zip(self.row_labels, self.matrix, strict=True):
                writer.writerow([name, *row])
        return path


def _overlap(a: SpanLike, b: SpanLike) -> int:
    return max(0, min(a.end, b.end) - max(a.start, b.start))


def _best_match(gold: SpanLike, preds: Sequence[SpanLike]) -> SpanLike | None:
    # Largest overlap wins; ties go to the leftmost prediction (max keeps the first maximum).
    best = max(preds, key=lambda p: _overlap(gold, p), default=None)
    return best if best is not None and _overlap(gold, best) > 0 else None


def _pairs(gold: Sequence[SpanLike], pred: Sequence[SpanLike]) -> list[tuple[str, str]]:
    ordered = sorted(pred, key=lambda p: (p.start, p.end))
    pairs: list[tuple[str, str]] = []
    for g in gold:
        match = _best_match(g, ordered)
        pairs.append((span_type(g), span_type(match) if match else MISSED))
    for p in ordered:
        if not any(overlaps(p, g) for g in gold):
            pairs.append((SPURIOUS, span_type(p)))
    return pairs


def type_confusion(
    gold: Sequence[Sequence[SpanLike]], pred: Sequence[Sequence[SpanLike]], labels: list[str] | None = None
) -> TypeConfusion:
    """Count gold-type → predicted-type pairs over documents (``gold[i]``, ``pred[i]`` of document ``i``).

    ``labels`` fixes the type order (e.g. the model's types, so unseen types still get a row); types
    found in the data but absent from ``labels`` are appended sorted.
    """
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold documents but {len(pred)} predicted")
    pairs = [pair for g, p in zip(gold, pred, strict=True) for pair in _pairs(g, p)]
    found = {t for pair in pairs for t in pair} - {MISSED, SPURIOUS}
    order = list(labels or [])
    order += sorted(found - set(order))
    rows, cols = [*order, SPURIOUS], [*order, MISSED]
    row_at, col_at = {n: i for i, n in enumerate(rows)}, {n: i for i, n in enumerate(cols)}
    matrix = [[0] * len(cols) for _ in rows]
    for g, p in pairs:
        matrix[row_at[g]][col_at[p]] += 1
    return TypeConfusion(order, matrix)
