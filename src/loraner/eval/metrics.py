"""Entity-level scores on IOB2 tag sequences: strict seqeval, micro P/R/F1, token accuracy, per type.

Strict IOB2 means an entity counts as correct only when its type *and* both boundaries match, and an
``I-`` tag that does not continue a ``B-`` of the same type starts no entity at all. The type is the
full text after ``B-``/``I-`` (``person-actor``), never a suffix of it.
"""

from __future__ import annotations

from typing import Any

from seqeval.metrics import accuracy_score, classification_report
from seqeval.scheme import IOB2

_PREFIXES = ("B-", "I-")


def validate_tags(sequences: list[list[str]], role: str) -> None:
    """Reject anything that is not ``O``/``B-TYPE``/``I-TYPE``.

    Why: seqeval's default (non-strict) decoder reads an IO label such as ``person-other`` as prefix
    ``p`` + type ``other`` (it splits on the first ``-``), so ``person-other`` and ``art-other`` would
    collapse into one type and a confusion between them would score as correct.
    """
    for i, seq in enumerate(sequences):
        for j, tag in enumerate(seq):
            if tag == "O" or (tag[:2] in _PREFIXES and len(tag) > 2):
                continue
            raise ValueError(
                f"{role} sequence {i}, position {j}: tag {tag!r} is not 'O', 'B-TYPE' or 'I-TYPE'; "
                "convert IO (or other scheme) labels to IOB2 before scoring"
            )


def check_shapes(gold: list[list[str]], pred: list[list[str]]) -> None:
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} sequences but pred has {len(pred)}")
    for i, (g, p) in enumerate(zip(gold, pred, strict=True)):
        if len(g) != len(p):
            raise ValueError(f"sequence {i}: gold has {len(g)} tags but pred has {len(p)}")


def _has_entity(sequences: list[list[str]]) -> bool:
    # In strict IOB2 every entity starts with B-, so no B- anywhere means no entities at all.
    return any(tag.startswith("B-") for seq in sequences for tag in seq)


def _token_accuracy(gold: list[list[str]], pred: list[list[str]]) -> float:
    if not any(gold):
        return 0.0
    return float(accuracy_score(gold, pred))


def _per_type(report: dict[str, Any]) -> dict[str, dict[str, float | int]]:
    return {
        name: {
            "precision": float(row["precision"]),
            "recall": float(row["recall"]),
            "f1": float(row["f1-score"]),
            "support": int(row["support"]),
        }
        for name, row in report.items()
        if not name.endswith(" avg")
    }


def entity_scores(gold: list[list[str]], pred: list[list[str]]) -> dict[str, Any]:
    """Strict IOB2 entity scores.

    Returns ``{"precision", "recall", "f1", "accuracy", "per_type": {type: {precision, recall, f1,
    support}}}`` with plain Python numbers (JSON-serialisable). Undefined ratios (nothing predicted,
    nothing gold) are 0.0. Raises ValueError on non-IOB2 tags or mismatched lengths.
    """
    check_shapes(gold, pred)
    validate_tags(gold, "gold")
    validate_tags(pred, "pred")
    scores: dict[str, Any] = {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "accuracy": _token_accuracy(gold, pred),
        "per_type": {},
    }
    # seqeval warns and averages empty arrays (NaN) when neither side has an entity: skip it.
    if not (_has_entity(gold) or _has_entity(pred)):
        return scores
    report = classification_report(gold, pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    micro = report["micro avg"]
    scores["precision"] = float(micro["precision"])
    scores["recall"] = float(micro["recall"])
    scores["f1"] = float(micro["f1-score"])
    scores["per_type"] = _per_type(report)
    return scores
