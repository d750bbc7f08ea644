"""Scale-out on one machine: what Ray and a second training process cost when there is nothing to gain.

* Inference: ``loraner predict`` (one process, all cores) against ``loraner predict --engine ray`` with
  1 and 2 actors, on the same texts (``scale_texts``, 2,000 in a full run) and the same ONNX fp32 model,
  timed as a user runs them (whole commands: start-up, model loads, Ray's start included). Every Ray
  output must have the plain command's rows in its order; the share with identical entities is shown.
* Training: ``loraner train`` of the tiny model on synthetic notes with 1 process (2 threads) against
  ``torchrun --nproc_per_node 2`` (gloo, 1 thread each), samples/s from the Trainer.

On a 2-core box both show overhead, not speed-up: the cores are the same, Ray adds its own processes
and serialisation, DDP adds an all-reduce per step. The numbers say what a cluster must win back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from bench.lib.common import REPO_DIR, Context, median, print_table, ratio, write_result
from bench.lib.data import generated_sentences
from bench.lib.models import build_models, build_torch_model

EPOCHS = 2
SYNTH_LABELS = ["O", "B-PATIENT", "I-PATIENT", "B-LOC", "I-LOC"]


def loraner(*args: str) -> list[str]:
    return [sys.executable, "-m", "loraner", *args]


def timed(command: list[str], log: Path, env: dict[str, str] | None = None) -> float:
    """Wall seconds of ``command``; its output goes to ``log``; a failure stops the workload."""
    started = time.perf_counter()
    with log.open("wb") as handle:
        done = subprocess.run(
            command, cwd=REPO_DIR, stdout=handle, stderr=subprocess.STDOUT, env=env, check=False
        )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:6])} ... failed; see {log}")
    return seconds


def inference_runs(ctx: Context, work: Path) -> dict[str, Any]:
    # fp32: dynamic int8 quantises activations per batch, so its output depends on how rows are batched.
    model = build_models(ctx).onnx_fp32_dir
    texts = generated_sentences(ctx.sizes.scale_texts, ctx.seed)
    source = work / "texts.jsonl"
    source.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)))
    common = ["--model", str(model), "--backend", "onnx", "--input", str(source)]
    variants = {
        "predict (1 process)": ["--threads", str(ctx.threads)],
        "--engine ray, 1 actor": ["--engine", "ray", "--concurrency", "1", "--threads", str(ctx.threads)],
        "--engine ray, 2 actors": ["--engine", "ray", "--concurrency", "2", "--threads", "1"],
    }
    rows, results = [], {}
    reference = None
    for name, extra in variants.items():
        seconds = []
        for repeat in range(ctx.sizes.scale_repeats):
            out = work / f"{len(results)}-{repeat}.jsonl"
            ctx.log(f"  {name}, run {repeat + 1}")
            seconds.append(
                timed(loraner("predict", *common, "--output", str(out), *extra), out.with_suffix(".log"))
            )
            got = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
            if reference is None:
                reference = got
            if [(r["id"], r["text"]) for r in got] != [(r["id"], r["text"]) for r in reference]:
                raise RuntimeError(f"{name}: rows differ from loraner predict's ({out})")
            same = sum(a["entities"] == b["entities"] for a, b in zip(got, reference, strict=True))
        wall = median(seconds)
        results[name] = {
            "seconds": [round(s, 2) for s in seconds],
            "texts_per_s": len(texts) / wall,
            # Row for row the same texts; entities equal but where batching changes float rounding
            # enough to flip a random model's near-uniform argmax (133 labels at ~0.01 each).
            "rows_with_equal_entities": same / len(got),
        }
    base = results["predict (1 process)"]["texts_per_s"]
    for name, result in results.items():
        result["vs_predict"] = ratio(result["texts_per_s"], base)
        rows.append(
            [name, median(result["seconds"]), result["texts_per_s"], result["vs_predict"],
             result["rows_with_equal_entities"]]
        )  # fmt: skip
    shape = "tiny" if ctx.sizes.tiny_model else "base-shaped"
    print_table(
        f"Scale-out, inference: {len(texts)} texts, ONNX fp32 ({shape}), whole commands (median wall time)",
        ["variant", "seconds", "texts/s", "x predict", "same entities"],
        rows,
    )
    return {"texts": len(texts), "model": str(model), "variants": results}


def training_runs(ctx: Context, work: Path) -> dict[str, Any]:
    model = build_torch_model(work / "tiny-model", True, SYNTH_LABELS, ctx.tokenizer)
    config = {
        "name": "scale",
        "data": {
            "format": "synth",
            "synth_counts": {"train": ctx.sizes.scale_train_samples, "validation": 16, "test": 16},
        },
        "model": {"name_or_path": str(model), "max_length": 128, "stride": 16},
        "lora": {"r": 8, "alpha": 16, "target_modules": ["query", "value"]},
        "training": {"epochs": EPOCHS, "batch_size": 8, "learning_rate": 0.001, "logging_steps": 1000},
        "report": {"samples": 0, "evaluate_before": False},
    }
    path = work / "scale.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    variants = {
        "1 process, 2 threads": loraner("train", str(path), "--set", "training.threads=2"),
        # On a busy machine two OpenMP threads can be far slower than one: this row shows it.
        "1 process, 1 thread": loraner("train", str(path), "--set", "training.threads=1"),
        "2 processes (torchrun, gloo), 1 thread each": [
            *torchrun, "-m", "loraner", "train", str(path), "--set", "training.threads=1",
        ],
    }  # fmt: skip
    results, rows = {}, []
    for index, (name, command) in enumerate(variants.items()):
        speeds, seconds = [], []
        for repeat in range(ctx.sizes.scale_repeats):
            out = work / f"train-{index}-{repeat}"
            ctx.log(f"  training: {name}, run {repeat + 1}")
            timed([*command, "--output", str(out)], work / f"train-{index}-{repeat}.log", env)
            timing = json.loads((out / "metrics.json").read_text(encoding="utf-8"))["timing"]
            # Windows trained over both epochs per second of trainer.train() (validation included in
            # both; two processes leave fewer than 2 x 8 windows per epoch out).
            speeds.append(timing["train_windows"] * EPOCHS / timing["train_seconds"])
            seconds.append(timing["train_seconds"])
        results[name] = {"samples_per_s": speeds, "train_seconds": seconds, "median": median(speeds)}
    base = results["1 process, 2 threads"]["median"]
    for name, result in results.items():
        result["vs_one_process"] = ratio(result["median"], base)
        rows.append([name, result["median"], result["vs_one_process"]])
    print_table(
        f"Scale-out, training: tiny RoBERTa, LoRA r8, {ctx.sizes.scale_train_samples} synthetic notes"
        f" x {EPOCHS} epochs (2 cores: overhead, not speed-up)",
        ["variant", "samples/s", "x 1 process"],
        rows,
    )
    return {"train_samples": ctx.sizes.scale_train_samples, "variants": results}


def run(ctx: Context) -> dict[str, Any]:
    work = ctx.work / "scale"
    work.mkdir(parents=True, exist_ok=True)
    payload = {
        "inference": inference_runs(ctx, work),
        "training": training_runs(ctx, work),
        "note": "one machine: Ray and DDP overhead, not speed-up; a cluster adds cores, not this cost",
        "targets": [],
    }
    write_result(ctx, "scale", payload)
    return payload
