"""Loading a base encoder for token classification and wrapping it in LoRA adapters (PEFT)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from loraner.errors import ModelError
from loraner.settings import LoraSettings, resolve_model_path

log = logging.getLogger(__name__)

# Byte-level BPE tokenizers need a leading space to tokenize pre-split words as they appear mid-sentence.
PREFIX_SPACE_MODEL_TYPES = {"roberta", "longformer", "bart", "gpt2", "deberta", "camembert", "luke"}

# What LoRA's "all-linear" means for encoders whose linear layers have these names (PEFT matches suffixes).
ALL_LINEAR_TARGETS = ["query", "key", "value", "dense"]


def model_type_of(path: str) -> str:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(path).model_type
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read a model config from {path!r}: {exc}") from exc


def load_tokenizer(name_or_path: str) -> Any:
    from transformers import AutoTokenizer

    path = resolve_model_path(name_or_path)
    kwargs: dict[str, Any] = {}
    if model_type_of(path) in PREFIX_SPACE_MODEL_TYPES:
        kwargs["add_prefix_space"] = True
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load a tokenizer from {path!r}: {exc}") from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(f"{path!r}: a fast tokenizer is needed for offset mappings")
    return tokenizer


def load_base_model(name_or_path: str, labels: list[str]) -> Any:
    from transformers import AutoModelForTokenClassification

    path = resolve_model_path(name_or_path)
    id2label = dict(enumerate(labels))
    try:
        return AutoModelForTokenClassification.from_pretrained(
            path,
            num_labels=len(labels),
            id2label=id2label,
            label2id={label: i for i, label in id2label.items()},
            ignore_mismatched_sizes=True,
        )
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load a token-classification model from {path!r}: {exc}") from exc


def lora_config(settings: LoraSettings) -> Any:
    from peft import LoraConfig, TaskType

    targets = ALL_LINEAR_TARGETS if settings.target_modules == "all-linear" else list(settings.target_modules)
    return LoraConfig(
        task_type=TaskType.TOKEN_CLS,
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=targets,
        bias=settings.bias,
        # The new classification head is trained in full and saved with the adapter.
        modules_to_save=["classifier"],
    )


def wrap_with_lora(model: Any, settings: LoraSettings) -> Any:
    from peft import get_peft_model

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
