"""Wrapping a base encoder in LoRA adapters (PEFT), and counting what is trained."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from peft import LoraConfig, TaskType, get_peft_model

from loraner.errors import ModelError
from loraner.modeldir import HEAD_MODULE
from loraner.settings import LoraSettings


def lora_config(settings: LoraSettings) -> LoraConfig:
    # "all-linear" is PEFT's own: every linear layer of the encoder, whatever the architecture names them
    # (query/key/value/dense in BERT, q_lin/k_lin/.../lin1 in DistilBERT), never the classification head.
    targets = settings.target_modules
    return LoraConfig(
        task_type=TaskType.TOKEN_CLS,
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=targets if isinstance(targets, str) else list(targets),
        bias=settings.bias,
        # The new classification head is trained in full and saved with the adapter.
        modules_to_save=[HEAD_MODULE],
    )


def wrap_with_lora(model: Any, settings: LoraSettings) -> Any:
    try:
        return get_peft_model(model, lora_config(settings))
    except ValueError as exc:
        names = sorted({n.rsplit(".", 1)[-1] for n, _ in model.named_modules() if n})[:40]
        raise ModelError(
            f"LoRA target modules {settings.target_modules} do not fit this model ({exc}); "
            f"module names include: {', '.join(names)}"
        ) from exc


@dataclass(frozen=True)
class ParamCounts:
    total: int
    trainable: int

    @property
    def frozen(self) -> int:
        return self.total - self.trainable

    def to_dict(self) -> dict[str, float]:
        return {
            "total": self.total,
            "trainable": self.trainable,
            "frozen": self.frozen,
            "trainable_percent": round(100 * self.trainable / self.total, 4) if self.total else 0.0,
        }


def count_parameters(model: Any) -> ParamCounts:
    total = trainable = 0
    for param in model.parameters():
        total += param.numel()
        if param.requires_grad:
            trainable += param.numel()
    return ParamCounts(total, trainable)
