"""Two real training processes (``torchrun --nproc_per_node 2``, gloo on CPU) on the tiny model.

One optimizer step of 2 ranks x batch 4 must move the LoRA weights exactly as 1 process x batch 8 on
the same 8 sentences (DDP averages the gradients; the loss is normalised by the labelled tokens of all
ranks), only rank 0 may write, and ``--resume`` must continue a distributed run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from typer.testing import CliRunner

from loraner.cli import app

FIXTURE_DATA = Path(__file__).parents[1] / "fixtures" / "train"
ARTIFACTS = {
    "metrics.json",
    "before.json",  # the "before" scores a resumed run reuses
    "report.md",
    "confusion_matrix.png",
    "confusion_matrix.csv",
    "curves.png",
    "adapter",
    "merged",
    "checkpoints",
}


def sentences(path: Path) -> list[str]:
    blocks = path.read_text(encoding="utf-8").split("\n\n")
    return [b.strip() for b in blocks if b.strip() and not b.startswith("-DOCSTART-")]


@pytest.fixture(scope="module")
def config(tmp_path_factory, tiny_roberta_dir) -> Path:
    """Exactly 8 training sentences (one window each), the fixture's validation and test sets, and the
    tiny model without dropout: its random masks differ between a batch of 8 and two batches of 4."""
    tmp = tmp_path_factory.mktemp("ddp-data")
    model = tmp / "model"
    shutil.copytree(tiny_roberta_dir, model)
    settings = json.loads((model / "config.json").read_text(encoding="utf-8"))
    settings.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (model / "config.json").write_text(json.dumps(settings), encoding="utf-8")
    train = sentences(FIXTURE_DATA / "train.txt")[:8]
    (tmp / "train.txt").write_text("\n\n".join(train) + "\n", encoding="utf-8")
    spec = {
        "name": "tiny-ddp",
        "data": {
            "format": "conll",
            "path": str(tmp),
            "splits": {
                "train": "train.txt",
                "validation": str(FIXTURE_DATA / "dev.txt"),
                "test": str(FIXTURE_DATA / "test.txt"),
            },
        },
        "model": {"name_or_path": str(model), "max_length": 64, "stride": 8},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["query", "value"]},
        "training": {
            "epochs": 1,
            "max_steps": 1,
            "batch_size": 4,
            "batching": "random",
            "learning_rate": 0.01,
            "warmup_ratio": 0.0,
            "logging_steps": 1,
            "threads": 1,
            "mixed_precision": "no",  # fp32 on every CPU: the runs' weights are compared exactly
        },
        "report": {"samples": 1},
    }
    path = tmp / "tiny-ddp.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


def torchrun(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    result = subprocess.run(
        [*command, "-m", "loraner", "train", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def lora_weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "adapter" / "adapter_model.safetensors"))


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys() and any("lora_B" in k for k in a)
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=0, msg=key)


def single_process(config: Path, out: Path, *overrides: str) -> None:
    args = ["train", str(config), "--output", str(out), "--set", "training.batch_size=8"]
    for item in overrides:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)


@pytest.fixture(scope="module")
def ddp_run(config, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """Two steps on two processes, a checkpoint after each: the tests below share this one run."""
    cwd = tmp_path_factory.mktemp("ddp-run")
    result = torchrun(cwd, str(config), "--output", "out", "--set", "training.max_steps=2")
    return cwd, result


@pytest.fixture(scope="module")
def single_run(config, tmp_path_factory) -> Path:
    """The same two steps in one process with batch 8 (the same 8 sentences a step)."""
    out = tmp_path_factory.mktemp("single-run") / "out"
    single_process(config, out, "training.max_steps=2")
    return out


def test_two_processes_write_one_set_of_artifacts(ddp_run):
    cwd, result = ddp_run
    assert sorted(p.name for p in cwd.iterdir()) == ["out"]  # no stray runs/ from another rank
    out = cwd / "out"
    assert {p.name for p in out.iterdir()} == ARTIFACTS
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-1", "checkpoint-2"]
    assert result.stdout.count("outputs in out:") == 1  # the summary comes from rank 0 only
    assert result.stderr.count("effective batch: 4 per device x 1 accumulation x 2 processes = 8") == 1
    assert result.stderr.count("merged out/adapter into out/merged") == 1


def checkpoint_weights(run: Path, step: int) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / f"checkpoint-{step}" / "adapter_model.safetensors"))


def test_each_step_on_two_ranks_equals_the_step_on_one_process(ddp_run, single_run):
    cwd, _ = ddp_run
    out = cwd / "out"
    assert_same_weights(checkpoint_weights(out, 1), checkpoint_weights(single_run, 1))
    assert_same_weights(checkpoint_weights(out, 2), checkpoint_weights(single_run, 2))
    assert_same_weights(lora_weights(out), lora_weights(single_run))  # the best epoch's, both ways


def test_resume_continues_a_distributed_run(config, ddp_run, single_run, tmp_path):
    """The two-step, two-process run cut short after its first checkpoint (checkpoint-2 removed, as a
    run killed during step 2 leaves it) and resumed lands where two uninterrupted steps of one process
    with the same batches land: weights, Adam moments and the two-step schedule were restored.

    The checkpoints are compared, not the final adapter: that is the best epoch's, which may be the
    first one for both runs (then nothing of the resumed step would be compared)."""
    cwd = tmp_path / "ddp"
    shutil.copytree(ddp_run[0], cwd)  # the shared run stays as it was for the other tests
    shutil.rmtree(cwd / "out" / "checkpoints" / "checkpoint-2")
    result = torchrun(cwd, str(config), "--output", "out", "--resume", "--set", "training.max_steps=2")
    assert "starting from scratch" not in result.stderr
    resumed, reference = checkpoint_weights(cwd / "out", 2), checkpoint_weights(single_run, 2)
    step_1 = checkpoint_weights(cwd / "out", 1)
    assert any(not torch.equal(resumed[k], step_1[k]) for k in resumed), "the resumed step moved nothing"
    assert_same_weights(resumed, reference)


def test_warmup_is_a_share_of_the_steps_taken_with_the_world_size(tmp_path):
    from loraner.settings import ExperimentConfig
    from loraner.train.trainer import steps_per_epoch, training_arguments

    cfg = ExperimentConfig.model_validate(
        {"data": {"format": "synth"}, "training": {"epochs": 2, "batch_size": 4, "warmup_ratio": 0.1}}
    )
    assert steps_per_epoch(1000, 4, 1, 1) == 250 and steps_per_epoch(1001, 4, 1, 1) == 251
    assert steps_per_epoch(1000, 4, 1, 8) == 31  # whole rounds of 8 batches of 4
    assert steps_per_epoch(1000, 4, 2, 8) == 16
    assert training_arguments(cfg, tmp_path, 1000, 1).warmup_steps == 50  # 10 % of 2 x 250
    assert training_arguments(cfg, tmp_path, 1000, 8).warmup_steps == 7  # 10 % of 2 x 31
