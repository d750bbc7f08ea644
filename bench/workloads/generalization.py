"""Generalization: the quickstart preset (MiniLM, LoRA, generated notes only) trained as ``make demo``
trains it, then scored on notes the generator did not write: the Nor-DeID-SynthData holdout notes in
``../shared``, under both name conventions (``parts``: Nor-DeID's own tags; ``full_names``: the
generator's convention, ``data.join_spans: [PATIENT]``), beside its in-distribution test F1."""

from __future__ import annotations

import json
from typing import Any

from bench.lib.common import Context, print_table, target, write_result

CHAR_RECALL_TARGET = 0.95
NOR_DEID_F1_TARGET = 0.70


def run(ctx: Context) -> dict[str, Any]:
    from loraner import defaults
    from loraner.eval.generalization import (
        TABLE_HEADERS,
        generalization_rows,
        nor_deid_available,
        per_type_f1,
        score_generalization,
    )
    from loraner.settings import load_config
    from loraner.train.run import run_training

    if not nor_deid_available():
        ctx.log("generalization: skipped (no Nor-DeID holdout notes under ../shared)")
        result: dict[str, Any] = {"skipped": "no ../shared/data/nor-deid-synth", "targets": []}
        write_result(ctx, "generalization", result)
        return result
    sizes = ctx.sizes
    overrides = [f"data.path={ctx.work / 'synth'}", "report.samples=0"]
    if sizes.generalization_train:  # quick mode: a handful of notes, one epoch
        counts = {"train": sizes.generalization_train, "validation": 4, "test": 8}
        overrides += [
            f"data.synth_counts={json.dumps(counts)}",
            "training.epochs=1",
            "report.evaluate_before=false",
        ]
    cfg = load_config("quickstart", overrides)
    run_dir = ctx.work / "generalization-quickstart"
    ctx.log(f"generalization: training the quickstart preset ({cfg.data.synth_counts['train']} notes)")
    metrics = run_training(cfg, run_dir)
    ctx.log("generalization: scoring on the Nor-DeID holdout notes")
    scores = score_generalization(run_dir, sample=sizes.generalization_notes or None)
    rows = generalization_rows(metrics["test"], scores)
    full = scores["full_names"]["without_recognizers"]
    parts_f1 = scores["parts"]["without_recognizers"]["entity"]["micro"]["f1"]
    result = {
        "in_distribution": metrics["test"],
        "nor_deid": scores,
        "per_type_f1": {c: per_type_f1(scores[c]["without_recognizers"]) for c in ("parts", "full_names")},
        "timing": metrics["timing"],
        "config": metrics["config"],
        "targets": [
            target(
                "Nor-DeID holdout char-level PHI recall (model alone)",
                full["char_recall"],
                ">=",
                CHAR_RECALL_TARGET,
                f"with recognizers {scores['full_names']['with_recognizers']['char_recall']:.3f}",
            ),
            target(
                "Nor-DeID holdout entity F1, full-name convention (model alone)",
                full["entity"]["micro"]["f1"],
                ">=",
                NOR_DEID_F1_TARGET,
                f"Nor-DeID's own convention {parts_f1:.3f}",
            ),
            target("quickstart synthetic test F1", metrics["test"]["f1"], ">=", defaults.DEMO_MIN_F1.value),
        ],
    }
    write_result(ctx, "generalization", result)
    print_table(
        f"Generalization: quickstart model ({metrics['timing']['train_seconds']:.0f} s of training, "
        f"{metrics['timing']['train_windows']} windows)",
        TABLE_HEADERS,
        rows,
    )
    for convention, line in result["per_type_f1"].items():
        print(f"per-type F1 on Nor-DeID ({convention}, model alone): {line}")
    return result
