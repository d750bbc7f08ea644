"""Entity-level scores: micro precision/recall/F1 and per type, from character spans.

An entity counts as correct only when its start, its end and its full type (``person-actor``, never a
suffix of it) equal a gold entity's: seqeval's strict IOB2 mode, applied to the entities the inference
engine returns rather than to tag sequences (:mod:`loraner.scores` counts; this module shapes the
result for ``metrics.json`` and the reports).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loraner.scores import corpus_counts, micro
from loraner.spans import SpanLike


def entity_metrics(gold: Sequence[Sequence[SpanLike]], pred: Sequence[Sequence[SpanLike]]) -> dict[str, Any]:
    """``{"precision", "recall", "f1", "per_type": {type: {precision, recall, f1, support}}}`` over
    documents (``gold[i]``, ``pred[i]`` of document ``i``), as plain JSON-serialisable numbers.
    Undefined ratios (nothing predicted, nothing gold) are 0.0."""
    per_type = corpus_counts(gold, pred)
    total = micro(per_type)
    return {
        "precision": total.precision,
        "recall": total.recall,
        "f1": total.f(1.0),
        "per_type": {
            kind: {
                "precision": c.precision,
                "recall": c.recall,
                "f1": c.f(1.0),
                "support": c.tp + c.fn,
            }
            for kind, c in sorted(per_type.items())
        },
    }
