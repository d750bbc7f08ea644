"""De-identification scores of a model (``loraner evaluate --deid``): entity P/R/F1/F2 per type and
micro, character-level PHI recall (the share of gold PHI characters the chosen operator changed) and the
leak count, without and with the pattern recognisers.

The returned dict holds counts and scores only. The leak list and sample notes contain PHI, so they go
to a local markdown report and nowhere else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from loraner.data.examples import as_span_example
from loraner.deid import DeidConfig, DeidEvaluator, DeidOutput, with_overrides
from loraner.deid.metrics import Leak
from loraner.deid.pipeline import PredictBatch, deidentify_entities
from loraner.errors import ConfigError
from loraner.eval.evaluate import TEXTS_PER_CALL, split_examples
from loraner.eval.report import render_markdown_table, render_sample
from loraner.inference import NERPredictor
from loraner.modeldir import resolve_model_dir
from loraner.settings import ExperimentConfig
from loraner.types import Entity, SpanExample

DEID_VARIANTS = {"without_recognizers": False, "with_recognizers": True}
DEID_SAMPLE_NOTES = 5
DEID_SUMMARY_HEADERS = ("view", "recognizers", "P", "R", "F1", "F2", "char recall", "leaks")


def run_deid_evaluation(
    model_dir: Path,
    cfg: ExperimentConfig,
    split: str = "test",
    deid_config: DeidConfig | None = None,
    recognizers: bool | str = "both",
    *,
    report: Path | None = None,
    samples: int = DEID_SAMPLE_NOTES,
    views: Sequence[str] | None = None,
    predict_batch: PredictBatch | None = None,
    **predictor_options: Any,
) -> dict[str, Any]:
    """De-identification scores of a model on ``split``: entity P/R/F1/F2 per type and micro, character
    PHI recall (overall and per type) and the leak count, without and/or with the pattern recognisers.

    ``deid_config`` (a :class:`~loraner.deid.DeidConfig`, default: ``[TYPE]`` for everything) chooses the
    operators and the predictor's ``o_threshold``; ``recognizers`` is ``True``, ``False`` or ``"both"``.
    ``views``: data views to score; by default the configured one, plus Nor-DeID's ``structured`` view
    for comparison. The returned dict holds counts and scores only. The leak list and sample notes
    contain PHI, so they go to ``report`` (a local markdown file) and nowhere else.
    ``predict_batch`` replaces the model (tests, other detectors); otherwise ``predictor_options`` go to
    :meth:`NERPredictor.from_pretrained` (backend, dtype).
    """
    config = deid_config if deid_config is not None else DeidConfig()
    variants = _deid_variants(recognizers)
    if predict_batch is None:
        predictor = NERPredictor.from_pretrained(resolve_model_dir(model_dir), **predictor_options)
        predict_batch = partial(predictor.predict_batch, o_threshold=config.o_threshold)
    scores: dict[str, dict[str, Any]] = {}
    sections: list[str] = []
    for view in views or _deid_views(cfg):
        examples = deid_examples(cfg, split, view)
        model_entities = _predict_in_chunks(predict_batch, [ex.text for ex in examples])
        for name in variants:
            scored = score_deid(examples, model_entities, config, DEID_VARIANTS[name])
            scores.setdefault(view, {})[name] = scored.evaluator.summary(include_leaks=False)
            sections += _deid_report_sections(f"{view}, {name.replace('_', ' ')}", scored, samples)
    out: dict[str, Any] = {
        "name": cfg.name,
        "split": split,
        "model": str(model_dir),
        "o_threshold": config.o_threshold,
        "tidy": config.tidy,
        "propagate": list(config.propagate),
        "operators": _operator_names(config),
        "views": scores,
    }
    if report is not None:
        _write_deid_report(report, out, sections)
        out["report"] = str(report)
    return out


def _deid_variants(recognizers: bool | str) -> list[str]:
    if recognizers == "both":
        return list(DEID_VARIANTS)
    if isinstance(recognizers, bool):
        return ["with_recognizers" if recognizers else "without_recognizers"]
    raise ConfigError(f"recognizers must be true, false or 'both' (got {recognizers!r})")


def _deid_views(cfg: ExperimentConfig) -> list[str]:
    """Nor-DeID: the configured view, plus the structured records (the same PHI, as key: value lines)
    for comparison. Other formats have one view, named after the format."""
    if cfg.data.format != "nor-deid":
        return [cfg.data.format]
    other = "notes" if cfg.data.view == "structured" else "structured"
    return [cfg.data.view, other]


def deid_examples(cfg: ExperimentConfig, split: str, view: str) -> list[SpanExample]:
    if cfg.data.format == "nor-deid":
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"view": view})})
    return [as_span_example(ex) for ex in split_examples(cfg, split)]


def _predict_in_chunks(predict: PredictBatch, texts: list[str]) -> list[list[Entity]]:
    out: list[list[Entity]] = []
    for i in range(0, len(texts), TEXTS_PER_CALL):
        out += predict(texts[i : i + TEXTS_PER_CALL])
    return out


def _operator_names(config: DeidConfig) -> dict[str, str]:
    return {"default": config.default.operator, **{t: op.operator for t, op in config.per_type.items()}}


@dataclass
class DeidScore:
    """The evaluator plus what the local report needs: outputs per note and leaks with their note id."""

    evaluator: DeidEvaluator
    leaks: list[tuple[str, Leak]] = field(default_factory=list)
    notes: list[tuple[SpanExample, DeidOutput]] = field(default_factory=list)


def score_deid(
    examples: Sequence[SpanExample],
    model_entities: Sequence[Sequence[Entity]],
    config: DeidConfig,
    patterns: bool,
) -> DeidScore:
    variant = with_overrides(config, recognizers=patterns)
    scored = DeidScore(DeidEvaluator())
    for ex, entities in zip(examples, model_entities, strict=True):
        # One note at a time: notes are independent patients, so no surrogate memory is shared.
        [output] = deidentify_entities([ex.text], [entities], variant)
        before = len(scored.evaluator.leaks)
        scored.evaluator.add(ex.text, ex.spans, output.entities, output.result)
        scored.leaks += [(ex.id, leak) for leak in scored.evaluator.leaks[before:]]
        scored.notes.append((ex, output))
    return scored


def _deid_report_sections(title: str, scored: DeidScore, samples: int) -> list[str]:
    leaks = scored.leaks
    parts = [f"## {title}", "", f"### Leaks ({len(leaks)}): gold PHI not fully changed", ""]
    if leaks:
        rows = [
            (doc, leak.type, leak.text, f"{leak.start}-{leak.end}", leak.intact_chars, _whole(leak))
            for doc, leak in leaks
        ]
        headers = ["Note", "Type", "Text", "Offsets", "Intact chars", "Left intact"]
        parts.append(render_markdown_table(headers, rows))
    else:
        parts.append("_None._")
    parts.append("")
    shown = [(ex, out) for ex, out in scored.notes if ex.spans or out.entities][:samples]
    for ex, out in shown:
        gold = [(s.label, ex.text[s.start : s.end]) for s in ex.spans]
        pred = [(e.type, e.text) for e in out.entities]
        parts.append(render_sample(ex.text, gold, pred, title=f"Note {ex.id}"))
        quoted = [f"> {line}" if line.strip() else ">" for line in out.result.text.splitlines()]
        parts += ["De-identified:", "", *quoted, ""]
    return parts


def _whole(leak: Leak) -> str:
    return "whole span" if leak.fully else "partly"


def deid_summary_rows(result: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row per view and recogniser setting (:data:`DEID_SUMMARY_HEADERS`): scores and counts only."""
    rows = []
    for view, variants in result["views"].items():
        for name, s in variants.items():
            micro = s["entity"]["micro"]
            scores = [micro[k] for k in ("precision", "recall", "f1", "f2")] + [s["char_recall"]]
            rows.append((view, name.replace("_", " "), *(f"{v:.4f}" for v in scores), str(s["leak_count"])))
    return rows


def _write_deid_report(path: Path, result: dict[str, Any], sections: list[str]) -> None:
    head = [
        f"# De-identification report: {result['name']} ({result['split']})",
        "",
        "**Contains PHI from the evaluation data (leaks, sample notes): keep it local, never commit or "
        "share it.**",
        "",
        f"Model: `{result['model']}` · o_threshold: {result['o_threshold']} · tidy: {result['tidy']} · "
        f"propagate: {', '.join(result['propagate']) or 'none'} · operators: "
        + ", ".join(f"{t}={op}" for t, op in result["operators"].items()),
        "",
        render_markdown_table(DEID_SUMMARY_HEADERS, deid_summary_rows(result)),
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(head + sections), encoding="utf-8")
