"""The benchmark in quick mode (2-layer RoBERTa, a few texts, short load runs): every workload runs,
prints its table and writes its JSON with machine info and target verdicts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loraner.settings import shared_dir

REPO = Path(__file__).resolve().parents[2]
WORKLOADS = ("inference", "memory", "load", "training", "generalization")
TITLES = (
    "Inference throughput",
    "Single-sentence latency",
    "Memory:",
    "Service under load",
    "Training speed",
    "Generalization",
)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    if not (shared_dir() / "models" / "roberta-base-tokenizer").exists():
        pytest.skip("needs ../shared/models/roberta-base-tokenizer")
    results = tmp_path_factory.mktemp("bench-results")
    command = [
        sys.executable,
        "-m",
        "bench.run",
        "--quick",
        "--threads",
        "1",
        "--results",
        str(results),
        "--trained-model",
        str(results / "no-trained-model"),
    ]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    return done, results


def test_when_quick_mode_runs_then_every_workload_writes_json_and_a_table(quick_run):
    done, results = quick_run
    assert done.returncode == 0, done.stderr[-3000:]
    for title in (*TITLES, "All targets"):
        assert title in done.stdout, title
    for workload in WORKLOADS:
        data = json.loads((results / f"{workload}.json").read_text())
        assert data["quick"] is True and data["machine"]["threads"] == 1
        assert data["machine"]["versions"]["onnxruntime"]
        assert data["targets"] and all({"name", "value", "passed"} <= set(t) for t in data["targets"])
    summary = json.loads((results / "summary.json").read_text())
    assert len(summary["targets"]) >= len(WORKLOADS) and summary["minutes"] > 0


def test_when_no_trained_model_then_accuracy_says_skipped(quick_run):
    _, results = quick_run
    accuracy = json.loads((results / "inference.json").read_text())["accuracy"]
    assert accuracy["skipped"].startswith("no trained model at")


def test_when_both_recipes_predict_the_same_then_f1_difference_is_zero():
    from bench.training import compare_f1

    tags = {
        "gold": [["B-PER", "I-PER", "O"], ["B-LOC"]],
        "pred": [["B-PER", "I-PER", "O"], ["O"]],
        "f1": 0.67,
    }
    runs = {"D": [{"evaluation": dict(tags)}], "loraner": [{"evaluation": dict(tags)}]}
    out = compare_f1(runs, seed=0)
    assert out["f1_D"] == out["f1_loraner"] == pytest.approx(2 / 3, abs=1e-4)
    assert out["f1_diff_points"] == 0 and out["bootstrap_ci95_points"] == [0, 0]
    assert out["seed_noise_points"] == 0 and out["noise_points"] == 0


def test_seed_to_seed_spread_widens_the_noise_band():
    from bench.training import compare_f1

    gold = [["B-PER"], ["B-LOC"], ["B-ORG"], ["B-PER"]]

    def run(hits: int) -> dict:
        pred = [g if i < hits else ["O"] for i, g in enumerate(gold)]
        return {"evaluation": {"gold": gold, "pred": pred}}

    steady = compare_f1({"D": [run(3), run(3)], "loraner": [run(3), run(3)]}, seed=0)
    spread = compare_f1({"D": [run(2), run(4)], "loraner": [run(2), run(4)]}, seed=0)
    assert steady["seed_noise_points"] == 0 and steady["f1_per_seed"]["D"] == [0.8571, 0.8571]
    assert spread["f1_diff_points"] == 0 and spread["seed_noise_points"] > 10
    assert spread["noise_points"] >= spread["seed_noise_points"]
