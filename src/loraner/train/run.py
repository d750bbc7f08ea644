"""A whole training run: train, merge the adapter into its base, write the run's reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loraner.eval.artifacts import write_artifacts
from loraner.export.merge import merge_adapter
from loraner.modeldir import ADAPTER_DIR, MERGED_DIR
from loraner.settings import ExperimentConfig
from loraner.train import distributed, tracking
from loraner.train.trainer import train


def run_training(cfg: ExperimentConfig, out: Path, resume: bool = False) -> dict[str, Any] | None:
    """Train, merge the adapter, evaluate, and write every artefact into ``out`` (and, with
    ``training.report_to``, into the tracked run: :mod:`loraner.train.tracking`). Returns metrics.json
    on rank 0; the other ranks of a distributed run return None and write nothing (``train`` holds them
    at a barrier until every rank has finished training, before rank 0 saves, merges and exports)."""
    with tracking.tracked(cfg, out, main=distributed.is_main()):
        result = train(cfg, out, resume=resume)
        if result is None:
            return None
        if cfg.lora.enabled:
            merge_adapter(out / ADAPTER_DIR, out / MERGED_DIR)
        metrics: dict[str, Any] = {
            "name": cfg.name,
            "model": cfg.model.name_or_path,
            "lora": cfg.lora.enabled,
            "labels": result.labels,
            "test": result.test.metrics if result.test else None,
            "before": result.before,
            "validation": result.validation,
            "epochs": result.epochs,
            "params": result.params.to_dict(),
            "timing": result.timing,
            "config": cfg.model_dump(mode="json"),
        }
        write_artifacts(out, metrics, result.test, cfg.report.samples)
        tracking.log_results(cfg, out, metrics)
    return metrics
