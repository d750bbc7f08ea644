"""Training precision: ``mixed_precision: auto`` picks bf16 autocast only on CPUs with native bf16,
the choice is recorded, and a bf16 run works wherever bf16 exists (natively or emulated)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_cli_train import invoke, write_config

from loraner.errors import ConfigError
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


@pytest.mark.parametrize(
    ("setting", "lora", "cpu_autocast", "expected"),
    [
        ("auto", True, True, "bf16"),
        ("auto", True, False, "fp32"),
        ("auto", False, True, "fp32"),  # full fine-tuning trains every weight
        ("fp32", True, True, "fp32"),
        ("bf16", True, True, "bf16"),
    ],
)
def test_auto_keeps_the_frozen_base_in_bf16_only_for_lora_under_cpu_autocast(
    setting, lora, cpu_autocast, expected
):
    assert trainer.resolve_frozen_base(setting, lora, cpu_autocast) == expected


@pytest.mark.parametrize(
    ("lora", "cpu_autocast", "message"),
    [(False, True, "needs a LoRA run"), (True, False, "set training.mixed_precision")],
)
def test_a_bf16_frozen_base_where_it_cannot_work_is_a_config_error(lora, cpu_autocast, message):
    with pytest.raises(ConfigError, match=message):
        trainer.resolve_frozen_base("bf16", lora, cpu_autocast)


def lora_model(model_dir):
    from loraner.settings import LoraSettings
    from loraner.train.model import wrap_with_lora

    torch.manual_seed(0)
    model = load_token_classifier(model_dir, ["O", "B-PER", "I-PER"])
    return wrap_with_lora(
        model, LoraSettings(r=2, alpha=4, target_modules=["query", "value"], bias="lora_only")
    )


def test_the_frozen_base_trains_in_bf16_and_gets_its_own_fp32_weights_back(tiny_roberta_dir):
    model = lora_model(tiny_roberta_dir)
    fp32 = {name: param.detach().clone() for name, param in model.named_parameters()}
    assert trainer.cast_frozen(model, torch.bfloat16) > 0
    dtypes = {param.requires_grad: set() for param in model.parameters()}
    for param in model.parameters():
        dtypes[param.requires_grad].add(param.dtype)
    assert dtypes == {True: {torch.float32}, False: {torch.bfloat16}}  # LoRA, head, biases stay fp32

    ids = torch.tensor([[0, 100, 200, 300, 2]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(input_ids=ids, labels=torch.tensor([[-100, 0, 1, 2, -100]])).loss
    loss.backward()
    trained = [p for p in model.parameters() if p.requires_grad]
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in trained)

    trainer.restore_frozen_fp32(model, str(tiny_roberta_dir), ["O", "B-PER", "I-PER"])
    for name, param in model.named_parameters():
        assert param.dtype == torch.float32, name
        if not param.requires_grad and "classifier" not in name:
            # the checkpoint's own values, not the bf16 rounding of them
            assert torch.equal(param, fp32[name]), name


@pytest.mark.parametrize("frozen", ["bf16", "fp32"])
def test_a_bf16_run_scores_its_test_split_as_its_saved_model_is_served(tmp_path, tiny_roberta_dir, frozen):
    """The test score runs in fp32 on the base's own weights, whatever the run trained in: no bf16 copy of
    the base and no autocast left around the model's forward by the mixed-precision training."""
    config = write_config(tmp_path, tiny_roberta_dir)
    out = tmp_path / "out"
    overrides = ["--set", "training.mixed_precision=bf16", "--set", f"training.frozen_base={frozen}"]
    invoke("train", str(config), "--output", str(out), *overrides)
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["timing"]["frozen_base"] == frozen
    assert metrics["test"]["f1"] > metrics["before"]["f1"] + 0.2
    evaluated_file = tmp_path / "eval.json"
    args = ("--model", str(out), "--config", str(config), "--output", str(evaluated_file), "--dtype", "fp32")
    invoke("evaluate", *args)  # the fp32 weights as served, without autocast, like the run's test score
    evaluated = json.loads(evaluated_file.read_text(encoding="utf-8"))["test"]
    for key in ("precision", "recall", "f1"):
        assert evaluated[key] == pytest.approx(metrics["test"][key], abs=1e-6), key
