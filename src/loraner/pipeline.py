"""End-to-end jobs behind the CLI: train -> merge -> report, evaluate a saved model, and the demo."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loraner.errors import ConfigError, ModelError
from loraner.settings import ExperimentConfig
from loraner.types import Example, SpanExample, WordExample

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

    preset = Path(__file__).resolve().parents[2] / "configs" / "quickstart.yaml"
    cfg = load_config(preset, [f"data.path={output / 'synth'}"])
    from loraner.data.synth import write_synth

    write_synth(Path(cfg.data.path or output / "synth"), cfg.data.synth_counts, cfg.data.seed)
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
