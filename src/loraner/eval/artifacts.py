"""What a training run leaves for people to read: ``metrics.json``, ``report.md`` with sample
predictions, the confusion matrix (PNG and CSV), the training curves, and the model cards
(``README.md`` in ``adapter/`` and ``merged/``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loraner.eval.card import write_model_cards
from loraner.eval.confusion import type_confusion
from loraner.eval.evaluate import Evaluation
from loraner.eval.plots import plot_confusion, plot_curves
from loraner.eval.report import render_sample, write_report

CONFUSION_TITLE = "Entity type confusion (gold → predicted)"


def write_artifacts(out: Path, metrics: dict[str, Any], test: Evaluation | None, n_samples: int) -> None:
    images: dict[str, str] = {}
    samples: list[str] = []
    if test is not None:
        confusion = type_confusion([ex.spans for ex in test.examples], test.predictions)
        confusion.to_csv(out / "confusion_matrix.csv")
        plot_confusion(confusion, out / "confusion_matrix.png", CONFUSION_TITLE)
        images["confusion_matrix"] = "confusion_matrix.png"
        samples = sample_blocks(test, n_samples)
    if metrics.get("epochs"):
        plot_curves(metrics["epochs"], out / "curves.png")
        images["curves"] = "curves.png"
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False), encoding="utf-8")
    write_report(out / "report.md", metrics, samples, images)
    write_model_cards(out, metrics)


def sample_blocks(evaluation: Evaluation, n: int) -> list[str]:
    """Report blocks for the first ``n`` test examples that have gold or predicted entities."""
    blocks = []
    for ex, predicted in zip(evaluation.examples, evaluation.predictions, strict=True):
        if len(blocks) >= n:
            break
        gold = [(s.label, ex.text[s.start : s.end]) for s in ex.spans]
        pred = [(e.type, e.text) for e in predicted]
        if gold or pred:
            blocks.append(render_sample(ex.text, gold, pred))
    return blocks
