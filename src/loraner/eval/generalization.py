"""Does a model trained on generated notes de-identify notes it was not generated from?

The quickstart model learns from ``loraner data synth`` only. This scores it on the Nor-DeID-SynthData
holdout notes (``../shared``, read through the ``phi-minilm-lora`` preset's data section), under both
name conventions: ``parts`` (Nor-DeID's own tags: first and last names apart) and ``full_names`` (the
generator's convention: ``data.join_spans: [PATIENT]``). Each gives entity P/R/F1 (exact match, per type
and micro), character-level PHI recall (the share of gold PHI characters removed) and the leak count,
with the model alone and with the pattern recognisers. Scores only: nothing here writes note text.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loraner.deid import DeidConfig
from loraner.deid.pipeline import PredictBatch
from loraner.eval.deid import run_deid_evaluation
from loraner.inference import NERPredictor
from loraner.modeldir import resolve_model_dir
from loraner.settings import ExperimentConfig, load_config
from loraner.types import Entity

NOR_DEID_PRESET = "phi-minilm-lora"
# Convention name -> data.join_spans.
CONVENTIONS: dict[str, list[str]] = {"parts": [], "full_names": ["PATIENT"]}
TABLE_HEADERS = ("test notes", "convention", "recognizers", "P", "R", "F1", "char recall", "leaks")


def nor_deid_config(sample: int | None = None) -> ExperimentConfig:
    """The Nor-DeID data section of the clinical preset; ``sample`` keeps that many holdout notes."""
    overrides = [f"data.sample={{test: {sample}}}"] if sample else []
    return load_config(NOR_DEID_PRESET, overrides)


def nor_deid_available() -> bool:
    """Whether the Nor-DeID holdout notes are on this machine (``../shared``, absent in a fresh clone)."""
    cfg = nor_deid_config()
    holdout = cfg.data.splits.get("test", "")
    return bool(cfg.data.path) and (Path(str(cfg.data.path)) / holdout).is_file()


def score_generalization(
    model_dir: str | Path,
    *,
    sample: int | None = None,
    recognizers: bool | str = "both",
    predict_batch: PredictBatch | None = None,
) -> dict[str, Any]:
    """Scores of ``model_dir`` on the Nor-DeID holdout notes: ``{convention: {variant: summary}}`` with
    the variants ``without_recognizers`` / ``with_recognizers`` (:meth:`DeidEvaluator.summary`).
    ``predict_batch`` replaces the model (tests)."""
    model = Path(model_dir)
    if predict_batch is None:
        model = resolve_model_dir(model_dir)
        predict_batch = NERPredictor.from_pretrained(model).predict_batch
    cache: dict[tuple[str, ...], list[list[Entity]]] = {}
    detect = predict_batch

    def predict(texts: Sequence[str]) -> list[list[Entity]]:
        # The notes are the same under both conventions: predict them once.
        key = tuple(texts)
        if key not in cache:
            cache[key] = detect(list(texts))
        return cache[key]

    base = nor_deid_config(sample)
    out: dict[str, Any] = {"model": str(model_dir), "preset": NOR_DEID_PRESET, "split": "test"}
    for convention, joined in CONVENTIONS.items():
        # Only the holdout file is read.
        data = base.data.model_copy(
            update={"join_spans": joined, "splits": {"test": base.data.splits["test"]}}
        )
        cfg = base.model_copy(update={"data": data})
        result = run_deid_evaluation(
            model, cfg, "test", DeidConfig(), recognizers, views=["notes"], predict_batch=predict
        )
        out[convention] = result["views"]["notes"]
    return out


def generalization_rows(
    in_distribution: dict[str, Any] | None, scores: dict[str, Any]
) -> list[tuple[str, ...]]:
    """:data:`TABLE_HEADERS` rows: the synthetic test split first (when given), then Nor-DeID."""
    rows: list[tuple[str, ...]] = []
    if in_distribution is not None:
        rows.append(
            (
                "synthetic test split",
                "generator",
                "without",
                *(f"{in_distribution[k]:.3f}" for k in ("precision", "recall", "f1")),
                "-",
                "-",
            )
        )
    for convention in CONVENTIONS:
        for variant, summary in scores.get(convention, {}).items():
            micro = summary["entity"]["micro"]
            rows.append(
                (
                    f"Nor-DeID holdout ({summary['documents']} notes)",
                    convention,
                    variant.split("_")[0],
                    *(f"{micro[k]:.3f}" for k in ("precision", "recall", "f1")),
                    f"{summary['char_recall']:.3f}",
                    str(summary["leak_count"]),
                )
            )
    return rows


def per_type_f1(summary: dict[str, Any]) -> str:
    """``PATIENT 0.26 · LOC 0.15 · ...`` from one summary."""
    per_type = summary["entity"]["per_type"]
    return " · ".join(f"{label} {row['f1']:.2f}" for label, row in per_type.items())
