"""LoRA targets: PEFT's ``all-linear`` on architectures whose layers have different names."""

from __future__ import annotations

import pytest
from transformers import AutoModelForTokenClassification, DistilBertConfig, RobertaConfig

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
}


@pytest.mark.parametrize(
    ("config_class", "linear_names"),
    [
        (DistilBertConfig, {"q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2"}),
        (RobertaConfig, {"query", "key", "value", "dense"}),
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


def test_when_targets_do_not_exist_then_the_error_names_real_modules():
    with pytest.raises(ModelError, match="q_lin"):
        wrap_with_lora(tiny(DistilBertConfig), LoraSettings(target_modules=["query", "value"]))
