"""Wrapping a base encoder in LoRA adapters (PEFT), and counting what is trained."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from peft import LoraConfig, TaskType, get_peft_model

from loraner.errors import ModelError
from loraner.modeldir import HEAD_MODULE
from loraner.settings import LoraSettings

# Presets name LoRA targets in BERT's words (RoBERTa, XLM-R, ELECTRA and MiniLM use them too):
# query, key, value; output.dense (the attention's output projection and the feed-forward output: PEFT
# matches both by suffix); intermediate.dense; dense (all three projections). Architectures that name
# their layers otherwise get them translated here, so one preset's list fits every base. A name that is
# not translated is used as written (PEFT's suffix match on the module name).
TARGET_ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    "mpnet": {
        "query": ("attn.q",),
        "key": ("attn.k",),
        "value": ("attn.v",),
        "output.dense": ("attn.o", "output.dense"),
        "dense": ("attn.o", "intermediate.dense", "output.dense"),
    },
    "distilbert": {
        "query": ("q_lin",),
        "key": ("k_lin",),
        "value": ("v_lin",),
        "output.dense": ("out_lin", "lin2"),
        "intermediate.dense": ("lin1",),
        "dense": ("out_lin", "lin1", "lin2"),
    },
    "deberta-v2": {"query": ("query_proj",), "key": ("key_proj",), "value": ("value_proj",)},
}


def resolve_target_modules(model: Any, targets: list[str] | str) -> list[str] | str:
    """The module names LoRA wraps in ``model``: ``targets`` translated for its architecture
    (:data:`TARGET_ALIASES`), each one checked to match at least one linear layer of the encoder.
    ``all-linear`` is PEFT's own: every linear layer, never the classification head."""
    if isinstance(targets, str):
        return targets
    aliases = TARGET_ALIASES.get(getattr(model.config, "model_type", ""), {})
    resolved = list(dict.fromkeys(name for target in targets for name in aliases.get(target, (target,))))
    linear = encoder_linear_names(model)
    unmatched = [name for name in resolved if not any(_suffix_match(full, name) for full in linear)]
    if unmatched:
        model_type = getattr(model.config, "model_type", "this")
        raise ModelError(
            f"LoRA target modules: no linear layer of this {model_type} model is named "
            f"{', '.join(unmatched)}; its linear layers are: {', '.join(short_linear_names(linear))}"
            + (f" (BERT's names are translated too: {', '.join(aliases)})" if aliases else "")
        )
    return resolved


def encoder_linear_names(model: Any) -> list[str]:
    import torch

    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and HEAD_MODULE not in name.split(".")
    ]


def short_linear_names(full_names: list[str]) -> list[str]:
    """The distinct layer names as a target list can write them: what follows the layer number
    (``encoder.layer.3.attention.self.query`` -> ``attention.self.query``)."""
    return list(dict.fromkeys(_after_layer_number(name) for name in full_names))


def _after_layer_number(name: str) -> str:
    parts = name.split(".")
    numbered = [i for i, part in enumerate(parts) if part.isdigit()]
    return ".".join(parts[numbered[-1] + 1 :]) if numbered else name


def _suffix_match(full_name: str, target: str) -> bool:
    # PEFT's rule for a list of names: the module's name is the target or ends with ".target".
    return full_name == target or full_name.endswith("." + target)


def lora_config(settings: LoraSettings, target_modules: list[str] | str | None = None) -> LoraConfig:
    targets = settings.target_modules if target_modules is None else target_modules
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
    targets = resolve_target_modules(model, settings.target_modules)
    try:
        return get_peft_model(model, lora_config(settings, targets))
    except ValueError as exc:
        raise ModelError(
            f"LoRA target modules {settings.target_modules} do not fit this model ({exc}); its linear "
            f"layers are: {', '.join(short_linear_names(encoder_linear_names(model)))}"
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
