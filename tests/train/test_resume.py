"""Checkpoints and ``--resume``: a real ``kill -9`` of a training process, a torn newest checkpoint, and
the resumed run ending with the same LoRA weights as an uninterrupted one."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file
from test_cli_train import invoke, write_config

from loraner.train.trainer import CHECKPOINT_MARKER


def adapter_weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "adapter" / "adapter_model.safetensors")


def train_command(config: Path, out: Path, *extra: str) -> list[str]:
    code = "from loraner.cli import main; main()"
    return [
        sys.executable,
        "-c",
        code,
        "train",
        str(config),
        "--output",
        str(out),
        "--set",
        "training.threads=1",
        *extra,
    ]


def test_kill_9_then_resume_ends_with_the_weights_of_an_uninterrupted_run(tmp_path, tiny_roberta_dir, caplog):
    config = write_config(tmp_path, tiny_roberta_dir, bias="lora_only")
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    invoke("train", str(config), "--output", str(straight), "--set", "training.threads=1")

    output = tmp_path / "killed.log"
    with output.open("wb") as sink:
        proc = subprocess.Popen(train_command(config, killed), stdout=sink, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 240
        try:
            while not list(killed.glob(f"checkpoints/checkpoint-*/{CHECKPOINT_MARKER}")):  # epoch 1 of 3
                assert proc.poll() is None, output.read_text()[-3000:]
                assert time.monotonic() < deadline, "no checkpoint after 240 s"
                time.sleep(0.01)
            proc.send_signal(signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "adapter").exists(), "the run finished before the kill"
    # A newer checkpoint torn mid-save (weights written, the rest and the marker not).
    torn = killed / "checkpoints" / "checkpoint-999"
    torn.mkdir()
    (torn / "adapter_model.safetensors").write_bytes(b"\0" * 100)

    # The resumed run needs no process of its own (only the killed one did): it reads all from disk.
    output = invoke("train", str(config), "--output", str(killed), "--set", "training.threads=1", "--resume")
    log = output + caplog.text
    assert "checkpoint-999 is incomplete" in log
    assert "resuming from" in log and "checkpoint-" in log
    a, b = adapter_weights(straight), adapter_weights(killed)
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} of {len(a)} tensors differ, e.g. {different[:3]}"
    straight_metrics = json.loads((straight / "metrics.json").read_text())
    killed_metrics = json.loads((killed / "metrics.json").read_text())
    assert killed_metrics["test"]["f1"] == straight_metrics["test"]["f1"]
    assert killed_metrics["before"] == straight_metrics["before"]  # kept from the first attempt


def test_resume_with_nothing_to_resume_is_an_error(tmp_path, tiny_roberta_dir):
    from typer.testing import CliRunner

    from loraner.cli import app

    config = write_config(tmp_path, tiny_roberta_dir)
    result = CliRunner().invoke(app, ["train", str(config), "--output", str(tmp_path / "new"), "--resume"])
    assert result.exit_code == 1
    assert "--resume: nothing to resume: no checkpoint under" in result.output


def test_resume_when_every_checkpoint_is_torn_is_an_error(tmp_path, tiny_roberta_dir):
    from typer.testing import CliRunner

    from loraner.cli import app

    config = write_config(tmp_path, tiny_roberta_dir)
    (tmp_path / "run" / "checkpoints" / "checkpoint-3").mkdir(parents=True)
    result = CliRunner().invoke(app, ["train", str(config), "--output", str(tmp_path / "run"), "--resume"])
    assert result.exit_code == 1
    assert "no complete checkpoint" in result.output and "all torn" in result.output
