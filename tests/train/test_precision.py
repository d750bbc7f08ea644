"""Training precision: ``mixed_precision: auto`` picks bf16 autocast only on CPUs with native bf16,
the choice is recorded, and a bf16 run works wherever bf16 exists (natively or emulated)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_cli_train import invoke, write_config

from loraner.inference.backends import TorchBackend, load_token_classifier
from loraner.settings import load_config
from loraner.train import trainer
from loraner.train.trainer import resolve_mixed_precision, training_arguments


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16"), (False, "no")])
def test_auto_is_bf16_only_where_the_cpu_has_native_bf16(monkeypatch, native, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(trainer, "native_bf16", lambda: native)
    assert resolve_mixed_precision("auto") == expected
    assert resolve_mixed_precision("no") == "no" and resolve_mixed_precision("bf16") == "bf16"


@pytest.mark.parametrize(("setting", "bf16"), [("bf16", True), ("no", False)])
def test_the_resolved_precision_reaches_the_trainer(tmp_path, tiny_roberta_dir, setting, bf16):
    cfg = load_config(write_config(tmp_path, tiny_roberta_dir), [f"training.mixed_precision={setting}"])
    args = training_arguments(cfg, tmp_path, n_train=8)
    assert args.bf16 is bf16 and args.fp16 is False


def test_bf16_autocast_validation_rounds_like_bf16(tiny_roberta_dir):
    model = load_token_classifier(tiny_roberta_dir)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_roberta_dir))
    ids = np.array([tokenizer("This is a test")["input_ids"]], dtype=np.int64)
    mask = np.ones_like(ids)
    fp32 = TorchBackend(model).logits(ids, mask)
    bf16 = TorchBackend(model, autocast=True).logits(ids, mask)
    assert not np.array_equal(fp32, bf16)  # autocast engaged: bf16 matmuls round
    np.testing.assert_allclose(bf16, fp32, atol=0.1)


def test_a_bf16_run_trains_and_records_its_precision(tmp_path, tiny_roberta_dir):
    config = write_config(tmp_path, tiny_roberta_dir)
    out = tmp_path / "out"
    invoke("train", str(config), "--output", str(out), "--set", "training.mixed_precision=bf16")
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["timing"]["precision"] == "bf16 autocast (mixed_precision: bf16)"
    # It learned under autocast (this tiny run: 0.07 before; fp32 reaches 0.47, bf16 0.43).
    assert metrics["test"]["f1"] > metrics["before"]["f1"] + 0.2
    assert "bf16 autocast (mixed_precision: bf16)" in (out / "report.md").read_text(encoding="utf-8")


def test_an_auto_run_says_why_it_chose(tmp_path, tiny_roberta_dir):
    config = write_config(tmp_path, tiny_roberta_dir)
    out = tmp_path / "out"
    invoke(
        "train",
        str(config),
        "--output",
        str(out),
        "--set",
        "training.mixed_precision=auto",
        "--set",
        "training.epochs=1",
    )
    precision = json.loads((out / "metrics.json").read_text(encoding="utf-8"))["timing"]["precision"]
    if trainer.native_bf16():
        assert precision == "bf16 autocast (mixed_precision: auto: this CPU has native bf16)"
    else:
        assert precision == "fp32 (mixed_precision: auto: no native bf16 on this CPU)"
