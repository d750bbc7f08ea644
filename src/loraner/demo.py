"""``make demo``: the quickstart preset end to end, offline: synthetic notes -> LoRA on MiniLM -> report
-> merged model -> served with the demo page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loraner import defaults
from loraner.errors import ModelError
from loraner.eval.generalization import (
    TABLE_HEADERS,
    generalization_rows,
    nor_deid_available,
    score_generalization,
)
from loraner.eval.report import render_markdown_table
from loraner.modeldir import MERGED_DIR
from loraner.settings import load_config
from loraner.train.run import run_training


def run_demo(
    output: Path, min_f1: float = defaults.DEMO_MIN_F1.value, serve: bool = True, port: int = 8000
) -> dict[str, Any]:
    """Quickstart preset end to end; fails loudly if the test F1 misses ``min_f1``."""
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
    if nor_deid_available():
        report_generalization(run_dir, metrics["test"])
    else:
        print("Nor-DeID holdout notes not found (../shared): only the in-distribution F1 is reported")
    if serve:
        _serve_demo(run_dir / MERGED_DIR, port)
    return metrics


def report_generalization(run_dir: Path, in_distribution: dict[str, Any]) -> dict[str, Any]:
    """The quickstart model on notes the generator did not write (Nor-DeID holdout), beside its
    synthetic test F1; the scores go to ``generalization.json`` in the run directory."""
    scores = score_generalization(run_dir)
    (run_dir / "generalization.json").write_text(json.dumps(scores, indent=2), encoding="utf-8")
    print("quickstart model on text it was not trained on (Nor-DeID holdout notes):")
    print(render_markdown_table(TABLE_HEADERS, generalization_rows(in_distribution, scores)))
    return scores


def _serve_demo(model_dir: Path, port: int) -> None:
    try:
        from loraner.serve.app import run_server  # the [serve] extra is optional
    except ImportError:
        print("serving is not installed in this environment (pip install 'loraner[serve]')")
        return
    print(f"serving {model_dir}: demo page at http://127.0.0.1:{port}/demo  (Ctrl-C to stop)")
    run_server(model_dir, host="127.0.0.1", port=port)
