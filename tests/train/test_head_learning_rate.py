"""``training.head_learning_rate``: the new classification head trains at its own rate, on the same
schedule as the rest; without it every trainable parameter shares ``learning_rate``."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForTokenClassification, MPNetConfig, TrainingArguments

from loraner.settings import LoraSettings
from loraner.train.model import wrap_with_lora
from loraner.train.trainer import WindowDataset, WindowTrainer, is_head_parameter


def tiny_lora_model():
    config = MPNetConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=40,
        num_labels=3,
    )
    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_config(config)
    return wrap_with_lora(
        model, LoraSettings(r=2, alpha=4, target_modules=["query", "value"], bias="lora_only")
    )


def trainer_for(model, tmp_path, head_learning_rate):
    args = TrainingArguments(
        output_dir=str(tmp_path),
        learning_rate=1e-3,
        warmup_steps=2,
        max_steps=10,
        report_to="none",
        weight_decay=0.01,
    )
    features = [{"input_ids": [1, 5, 6, 2], "attention_mask": [1] * 4, "labels": [-100, 0, 1, -100]}]
    return WindowTrainer(
        model=model, args=args, train_dataset=WindowDataset(features), head_learning_rate=head_learning_rate
    )


def rates(trainer) -> dict[bool, list[float]]:
    """The learning rates the head's parameters (True) and the others (False) are updated with."""
    head = {id(p) for n, p in trainer.model.named_parameters() if is_head_parameter(n)}
    out: dict[bool, set[float]] = {True: set(), False: set()}
    for group in trainer.optimizer.param_groups:
        for param in group["params"]:
            out[id(param) in head].add(group["lr"])
    return {kind: sorted(values) for kind, values in out.items()}


@pytest.mark.parametrize("head_learning_rate", [None, 1e-2])
def test_the_head_gets_its_own_rate_on_the_same_schedule(tmp_path, head_learning_rate):
    model = tiny_lora_model()
    trainer = trainer_for(model, tmp_path, head_learning_rate)
    trainer.create_optimizer_and_scheduler(num_training_steps=10)
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    in_groups = [id(p) for g in trainer.optimizer.param_groups for p in g["params"]]
    assert sorted(in_groups) == sorted(trainable)  # every trainable parameter once, none lost or doubled
    assert any(is_head_parameter(n) for n, p in model.named_parameters() if p.requires_grad)
    for _ in range(2):  # to the end of the warm-up: the rates are the configured peaks
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
    peaks = rates(trainer)
    assert peaks[False] == pytest.approx([1e-3])
    assert peaks[True] == pytest.approx([head_learning_rate or 1e-3])
    for _ in range(4):  # linear decay: both fall by the same factor
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
    later = rates(trainer)
    factors = [r / 1e-3 for r in later[False]] + [r / (head_learning_rate or 1e-3) for r in later[True]]
    assert factors == pytest.approx([factors[0]] * len(factors)) and factors[0] < 1
    decays = {g["weight_decay"] for g in trainer.optimizer.param_groups if g["params"]}
    assert decays == {0.0, 0.01}  # the decay split of the stock optimizer survives
