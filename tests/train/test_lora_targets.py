"""LoRA targets: PEFT's ``all-linear`` and the presets' BERT-style names on architectures whose layers
have different names."""

from __future__ import annotations

import pytest
from transformers import AutoModelForTokenClassification, DistilBertConfig, MPNetConfig, RobertaConfig

from loraner.errors import ModelError
from loraner.settings import LoraSettings
from loraner.train.model import count_parameters, wrap_with_lora

LABELS = 5


def tiny(config_class) -> object:
    config = config_class(
        vocab_size=128, max_position_embeddings=64, num_labels=LABELS, **TINY[config_class.model_type]
    )
    return AutoModelForTokenClassification.from_config(config)


TINY = {
    "distilbert": {"dim": 32, "hidden_dim": 64, "n_layers": 2, "n_heads": 2},
    "roberta": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2},
    "mpnet": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2},
}
# The clinical presets' list (phi-*-lora, quickstart): attention and feed-forward projections.
CLINICAL = ["query", "key", "value", "output.dense", "intermediate.dense"]


@pytest.mark.parametrize(
    ("config_class", "linear_names"),
    [
        (DistilBertConfig, {"q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2"}),
        (RobertaConfig, {"query", "key", "value", "dense"}),
        (MPNetConfig, {"q", "k", "v", "o", "dense"}),
    ],
)
def test_when_all_linear_then_every_encoder_linear_gets_lora_and_the_head_is_trained_whole(
    config_class, linear_names
):
    model = wrap_with_lora(tiny(config_class), LoraSettings(r=2, alpha=4, target_modules="all-linear"))
    adapted = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if hasattr(module, "lora_A")}
    assert adapted == linear_names  # every linear layer of the encoder, none forgotten
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert any("classifier" in name and "modules_to_save" in name for name in trainable)
    assert not any("classifier" in name and "lora_" in name for name in trainable)  # the head: full
    counts = count_parameters(model)
    assert 0 < counts.trainable < counts.total


def adapted_layers(model) -> set[str]:
    """Each LoRA-wrapped layer by the last two parts of its name (``self.query``, ``attn.q``...)."""
    return {
        ".".join(name.split(".")[-2:]) for name, module in model.named_modules() if hasattr(module, "lora_A")
    }


@pytest.mark.parametrize(
    ("config_class", "expected"),
    [
        # RoBERTa: the names as written; output.dense is the attention output and the FFN output
        (RobertaConfig, {"self.query", "self.key", "self.value", "output.dense", "intermediate.dense"}),
        # MPNet names its attention q, k, v, o
        (MPNetConfig, {"attn.q", "attn.k", "attn.v", "attn.o", "intermediate.dense", "output.dense"}),
        # DistilBERT: q_lin ... out_lin, lin1 (FFN in), lin2 (FFN out)
        (
            DistilBertConfig,
            {
                "attention.q_lin",
                "attention.k_lin",
                "attention.v_lin",
                "attention.out_lin",
                "ffn.lin1",
                "ffn.lin2",
            },
        ),
    ],
)
def test_when_the_clinical_list_meets_any_architecture_then_the_same_projections_get_lora(
    config_class, expected
):
    model = wrap_with_lora(
        tiny(config_class), LoraSettings(r=2, alpha=4, target_modules=CLINICAL, bias="lora_only")
    )
    assert adapted_layers(model) == expected
    roberta_like = wrap_with_lora(tiny(RobertaConfig), LoraSettings(r=2, alpha=4, target_modules=CLINICAL))
    assert count_lora_layers(model) == count_lora_layers(roberta_like)  # 6 per layer on each


def count_lora_layers(model) -> int:
    return sum(1 for _, module in model.named_modules() if hasattr(module, "lora_A"))


def test_when_targets_do_not_exist_then_the_error_names_the_real_linear_layers():
    with pytest.raises(ModelError, match=r"no linear layer.*named attn_proj.*attention\.q_lin.*ffn\.lin2"):
        wrap_with_lora(tiny(DistilBertConfig), LoraSettings(target_modules=["query", "attn_proj"]))
    # the head is never a target
    with pytest.raises(ModelError, match=r"no linear layer .* is named classifier"):
        wrap_with_lora(tiny(MPNetConfig), LoraSettings(target_modules=["query", "classifier"]))
