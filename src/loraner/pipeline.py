"""End-to-end jobs behind the CLI: train -> merge -> report, evaluate a saved model, and the demo."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loraner.errors import ConfigError, ModelError
from loraner.settings import ExperimentConfig
from loraner.types import Entity, Example, Span, SpanExample, WordExample

if TYPE_CHECKING:
    from loraner.deid import DeidConfig, DeidEvaluator, DeidOutput
    from loraner.deid.metrics import Leak
    from loraner.deid.pipeline import PredictBatch
    from loraner.inference import NERPredictor

log = logging.getLogger(__name__)


def run_training(cfg: ExperimentConfig, out: Path, resume: bool = False) -> dict[str, Any]:
    """Train, merge the adapter, evaluate, and write every artefact into ``out``. Returns metrics.json."""
    from loraner.export.merge import merge_adapter
    from loraner.train.trainer import train

    result = train(cfg, out, resume=resume)
    if cfg.lora.enabled:
        merge_adapter(out / "adapter", out / "merged")
    metrics: dict[str, Any] = {
        "name": cfg.name,
        "model": cfg.model.name_or_path,
        "lora": cfg.lora.enabled,
        "labels": result.labels,
        "test": _public(result.test.metrics) if result.test else None,
        "before": _public(result.before) if result.before else None,
        "validation": result.validation,
        "epochs": result.epochs,
        "params": result.params.to_dict(),
        "timing": result.timing,
        "config": cfg.model_dump(mode="json"),
    }
    write_artifacts(out, metrics, result.test, result.test_examples, cfg.report.samples)
    return metrics


def _public(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if k != "windows"}


def write_artifacts(
    out: Path, metrics: dict[str, Any], test: Any, examples: Sequence[Example], n_samples: int
) -> None:
    """metrics.json, confusion matrix (PNG+CSV), curves, and report.md with sample predictions."""
    from loraner.eval.confusion import type_confusion
    from loraner.eval.plots import plot_curves
    from loraner.eval.report import write_report

    images: dict[str, str] = {}
    samples: list[str] = []
    if test is not None:
        confusion = type_confusion(test.gold, test.pred)
        confusion.to_csv(out / "confusion_matrix.csv")
        confusion.plot(out / "confusion_matrix.png")
        images["confusion_matrix"] = "confusion_matrix.png"
        samples = sample_blocks(examples, test, n_samples)
    if metrics.get("epochs"):
        plot_curves(metrics["epochs"], out / "curves.png")
        images["curves"] = "curves.png"
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False), encoding="utf-8")
    write_report(out / "report.md", metrics, samples, images)


def sample_blocks(examples: Sequence[Example], evaluation: Any, n: int) -> list[str]:
    """Report blocks for the first ``n`` test examples that have gold or predicted entities."""
    from loraner.eval.report import render_sample

    blocks = []
    for i, ex in enumerate(examples):
        if len(blocks) >= n:
            break
        doc = evaluation.encoded.docs[i]
        gold = unit_entities(ex, doc, evaluation.gold[i])
        pred = unit_entities(ex, doc, evaluation.pred[i])
        if gold or pred:
            blocks.append(render_sample(ex.text if isinstance(ex, SpanExample) else ex.tokens, gold, pred))
    return blocks


def unit_entities(ex: Example, doc: Any, tags: Sequence[str]) -> list[tuple[str, str]]:
    """(type, text) of the strict-IOB2 entities in per-unit ``tags``."""
    from loraner.eval.confusion import extract_chunks

    found = []
    for etype, start, end in extract_chunks(list(tags)):
        if isinstance(ex, WordExample):
            text = " ".join(ex.tokens[start:end])
        else:
            text = ex.text[doc.unit_offsets[start][0] : doc.unit_offsets[end - 1][1]]
        found.append((etype, text))
    return found


def load_for_evaluation(model_dir: Path) -> tuple[Any, Any, list[str]]:
    """A merged model dir, an adapter dir, or a run dir holding ``merged/`` -> (model, tokenizer, labels)."""
    from transformers import AutoModelForTokenClassification

    from loraner.export.merge import load_adapter_model
    from loraner.train.model import load_tokenizer

    if (model_dir / "merged").is_dir():
        model_dir = model_dir / "merged"
    if (model_dir / "adapter_config.json").exists():
        model = load_adapter_model(model_dir)
    elif (model_dir / "config.json").exists():
        model = AutoModelForTokenClassification.from_pretrained(str(model_dir)).eval()
    else:
        raise ModelError(f"{model_dir}: neither a model directory (config.json) nor an adapter")
    labels = [model.config.id2label[i] for i in range(len(model.config.id2label))]
    return model, load_tokenizer(str(model_dir)), labels


def run_evaluation(model_dir: Path, cfg: ExperimentConfig, split: str = "test") -> dict[str, Any]:
    from loraner.data import load_splits
    from loraner.train.predict import evaluate_examples

    model, tokenizer, labels = load_for_evaluation(model_dir)
    splits = load_splits(cfg.data)
    if split not in splits:
        raise ConfigError(f"split {split!r} not in the data (have: {', '.join(splits)})")
    evaluation = evaluate_examples(
        model,
        tokenizer,
        splits[split],
        labels,
        cfg.model.max_length,
        cfg.model.stride,
        cfg.training.eval_batch_size,
    )
    return {"name": cfg.name, "split": split, "model": str(model_dir), split: _public(evaluation.metrics)}


def run_demo(output: Path, min_f1: float = 0.95, serve: bool = True, port: int = 8000) -> dict[str, Any]:
    """Quickstart preset end to end; fails loudly if the test F1 misses ``min_f1``."""
    from loraner.settings import load_config

    # The synth reader also writes the generated notes as JSONL under data.path, for inspection.
    cfg = load_config("quickstart", [f"data.path={output / 'synth'}"])
    run_dir = output / "quickstart"
    metrics = run_training(cfg, run_dir)
    f1 = metrics["test"]["f1"]
    print(
        f"quickstart test F1 = {f1:.4f} (precision {metrics['test']['precision']:.4f}, "
        f"recall {metrics['test']['recall']:.4f}); report: {run_dir / 'report.md'}"
    )
    if f1 < min_f1:
        raise ModelError(f"quickstart test F1 {f1:.4f} is below the required {min_f1}")
    if serve:
        _serve_demo(run_dir / "merged", port)
    return metrics


def _serve_demo(model_dir: Path, port: int) -> None:
    try:
        from loraner.serve.app import run_server
    except ImportError:
        print("serving is not installed in this environment (pip install 'loraner[serve]')")
        return
    print(f"serving {model_dir}: demo page at http://127.0.0.1:{port}/demo  (Ctrl-C to stop)")
    run_server(model_dir, host="127.0.0.1", port=port)


# --------------------------------------------------------------------------- de-identification evaluation

DEID_VARIANTS = {"without_recognizers": False, "with_recognizers": True}
DEID_SAMPLE_NOTES = 5
PREDICT_CHUNK = 256  # texts per predict_batch call: enough for length-sorted window batching to pay off
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
) -> dict[str, Any]:
    """De-identification scores of a model on ``split``: entity P/R/F1/F2 per type and micro, character
    PHI recall (overall and per type) and the leak count, without and/or with the pattern recognisers.

    ``deid_config`` (a :class:`~loraner.deid.DeidConfig`, default: ``[TYPE]`` for everything) chooses the
    operators and the predictor's O threshold; ``recognizers`` is ``True``, ``False`` or ``"both"``.
    ``views``: data views to score; by default the configured one, plus Nor-DeID's ``structured`` view
    for comparison. The returned dict holds counts and scores only. The leak list and sample notes
    contain PHI, so they go to ``report`` (a local markdown file) and nowhere else.
    ``predict_batch`` replaces the model (tests, other detectors).
    """
    from loraner.deid import DeidConfig

    config = deid_config if deid_config is not None else DeidConfig()
    variants = _deid_variants(recognizers)
    predict = predict_batch or _deid_predictor(model_dir, config.threshold).predict_batch
    scores: dict[str, dict[str, Any]] = {}
    sections: list[str] = []
    for view in views or _deid_views(cfg):
        examples = _deid_examples(cfg, split, view)
        model_entities = _predict_in_chunks(predict, [ex.text for ex in examples])
        for name in variants:
            scored = _score_deid(examples, model_entities, config, DEID_VARIANTS[name])
            scores.setdefault(view, {})[name] = scored.evaluator.summary(include_leaks=False)
            sections += _deid_report_sections(f"{view}, {name.replace('_', ' ')}", scored, samples)
    out: dict[str, Any] = {
        "name": cfg.name,
        "split": split,
        "model": str(model_dir),
        "threshold": config.threshold,
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


def _deid_examples(cfg: ExperimentConfig, split: str, view: str) -> list[SpanExample]:
    from loraner.data import load_splits

    data = cfg.data.model_copy(update={"view": view}) if cfg.data.format == "nor-deid" else cfg.data
    splits = load_splits(data)
    if split not in splits:
        raise ConfigError(f"split {split!r} not in the data (have: {', '.join(splits)})")
    return [_as_span_example(ex) for ex in splits[split]]


def _as_span_example(ex: Example) -> SpanExample:
    """Word-level examples become their words joined by spaces, with character spans."""
    if isinstance(ex, SpanExample):
        return ex
    from loraner.eval.confusion import extract_chunks

    starts, at = [], 0
    for token in ex.tokens:
        starts.append(at)
        at += len(token) + 1
    spans = [
        Span(starts[s], starts[e - 1] + len(ex.tokens[e - 1]), label)
        for label, s, e in extract_chunks(list(ex.tags))
    ]
    return SpanExample(text=" ".join(ex.tokens), spans=spans, id=ex.id)


def _deid_predictor(model_dir: Path, threshold: float | None) -> NERPredictor:
    """A predictor for a merged/exported model dir or a run dir holding ``merged/``."""
    from loraner.inference import NERPredictor

    if (model_dir / "merged").is_dir():
        model_dir = model_dir / "merged"
    if (model_dir / "adapter_config.json").exists():
        raise ModelError(f"{model_dir}: an adapter; merge it first (loraner merge), then evaluate that")
    return NERPredictor.from_pretrained(model_dir, o_threshold=threshold)


def _predict_in_chunks(predict: PredictBatch, texts: list[str]) -> list[list[Entity]]:
    out: list[list[Entity]] = []
    for i in range(0, len(texts), PREDICT_CHUNK):
        out += predict(texts[i : i + PREDICT_CHUNK])
    return out


def _operator_names(config: DeidConfig) -> dict[str, str]:
    return {"default": config.default.operator, **{t: op.operator for t, op in config.per_type.items()}}


@dataclass
class _DeidScore:
    """The evaluator plus what the local report needs: outputs per note and leaks with their note id."""

    evaluator: DeidEvaluator
    leaks: list[tuple[str, Leak]] = field(default_factory=list)
    notes: list[tuple[SpanExample, DeidOutput]] = field(default_factory=list)


def _score_deid(
    examples: Sequence[SpanExample],
    model_entities: Sequence[Sequence[Entity]],
    config: DeidConfig,
    patterns: bool,
) -> _DeidScore:
    from loraner.deid import DeidEvaluator, with_overrides
    from loraner.deid.pipeline import deidentify_entities

    variant = with_overrides(config, recognizers=patterns)
    scored = _DeidScore(DeidEvaluator())
    for ex, entities in zip(examples, model_entities, strict=True):
        # One note at a time: notes are independent patients, so no surrogate memory is shared.
        [output] = deidentify_entities([ex.text], [entities], variant)
        before = len(scored.evaluator.leaks)
        scored.evaluator.add(ex.text, ex.spans, output.entities, output.result)
        scored.leaks += [(ex.id, leak) for leak in scored.evaluator.leaks[before:]]
        scored.notes.append((ex, output))
    return scored


def _deid_report_sections(title: str, scored: _DeidScore, samples: int) -> list[str]:
    from loraner.eval.report import render_markdown_table, render_sample

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
    from loraner.eval.report import render_markdown_table

    head = [
        f"# De-identification report: {result['name']} ({result['split']})",
        "",
        "**Contains PHI from the evaluation data (leaks, sample notes): keep it local, never commit or "
        "share it.**",
        "",
        f"Model: `{result['model']}` · O threshold: {result['threshold']} · tidy: {result['tidy']} · "
        f"propagate: {', '.join(result['propagate']) or 'none'} · operators: "
        + ", ".join(f"{t}={op}" for t, op in result["operators"].items()),
        "",
        render_markdown_table(DEID_SUMMARY_HEADERS, deid_summary_rows(result)),
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(head + sections), encoding="utf-8")
