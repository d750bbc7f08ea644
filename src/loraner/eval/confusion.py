"""Confusion between entity types, read from IOB2 tag sequences.

Each gold entity is paired with the predicted entity that overlaps it most (any overlap counts, so a
boundary error still shows which type was chosen). Gold entities with no overlapping prediction land in
the ``MISSED`` column; predictions that overlap no gold entity land in the ``SPURIOUS`` row.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from seqeval.scheme import IOB2, Entities

from loraner.eval.metrics import check_shapes, validate_tags

MISSED = "MISSED"
SPURIOUS = "SPURIOUS"

# (type, start, end) with ``end`` exclusive, token positions within one sequence.
Chunk = tuple[str, int, int]


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

    def plot(self, path: str | Path, title: str = "Entity type confusion (gold → predicted)") -> Path:
        from loraner.eval.plots import plot_confusion

        return plot_confusion(self, path, title)


def extract_chunks(sequence: list[str]) -> list[Chunk]:
    """Entities of one IOB2 sequence, decoded exactly like the strict metrics decode them."""
    return [(e.tag, e.start, e.end) for e in Entities([sequence], IOB2).entities[0]]


def _overlap(a: Chunk, b: Chunk) -> int:
    return max(0, min(a[2], b[2]) - max(a[1], b[1]))


def _best_match(gold: Chunk, preds: list[Chunk]) -> Chunk | None:
    # Largest overlap wins; ties go to the leftmost prediction (max keeps the first maximum).
    best = max(preds, key=lambda p: _overlap(gold, p), default=None)
    return best if best is not None and _overlap(gold, best) > 0 else None


def _pairs(gold_seq: list[str], pred_seq: list[str]) -> list[tuple[str, str]]:
    gold_chunks, pred_chunks = extract_chunks(gold_seq), extract_chunks(pred_seq)
    pairs: list[tuple[str, str]] = []
    for g in gold_chunks:
        match = _best_match(g, pred_chunks)
        pairs.append((g[0], match[0] if match else MISSED))
    for p in pred_chunks:
        if not any(_overlap(p, g) for g in gold_chunks):
            pairs.append((SPURIOUS, p[0]))
    return pairs


def type_confusion(
    gold: list[list[str]], pred: list[list[str]], labels: list[str] | None = None
) -> TypeConfusion:
    """Count gold-type → predicted-type pairs over all sequences.

    ``labels`` fixes the type order (e.g. the model's types, so unseen types still get a row); types
    found in the data but absent from ``labels`` are appended sorted. Raises ValueError on non-IOB2
    tags or sequences of different lengths.
    """
    check_shapes(gold, pred)
    validate_tags(gold, "gold")
    validate_tags(pred, "pred")
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
