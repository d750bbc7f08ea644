"""The base-model fingerprint: which weights an adapter was trained on, recorded in ``loraner.json``
at training and checked whenever the adapter is loaded onto a base."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from loraner.errors import ModelError
from loraner.modeldir.files import HEAD_MODULE
from loraner.modeldir.meta import ModelMeta

# Config keys that identify a base model's architecture, for the fingerprint.
_FINGERPRINT_CONFIG_KEYS = (
    "model_type",
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
)

# Bumped whenever base_fingerprint's recipe changes: caches keyed on it (the bench's adapters) rebuild.
FINGERPRINT_SCHEME = 2
_FINGERPRINT_ROWS = 1024  # rows hashed at a time (the digest is that of the whole tensor)


def base_fingerprint(model: Any) -> dict[str, str]:
    """Identifies the weights an adapter was trained on: a hash of the architecture's config and of a
    few frozen tensors (the input embeddings, the first and the last encoder weight matrix).

    ``model`` is the base Transformers model *before* LoRA wraps it (its classifier head is excluded:
    that is part of the adapter).
    """
    config = model.config.to_dict()
    arch = {k: config.get(k) for k in _FINGERPRINT_CONFIG_KEYS}
    matrices = [(name, p) for name, p in model.named_parameters() if p.dim() == 2 and HEAD_MODULE not in name]
    chosen = [("embeddings", model.get_input_embeddings().weight)]
    chosen += [matrices[1], matrices[-1]] if len(matrices) > 2 else matrices
    import torch  # present whenever a model is: this module itself must not need it (ONNX serving)

    digest = hashlib.sha256()
    for name, tensor in chosen:
        digest.update(name.encode())
        # Rounded to bf16 first: the same base loaded in fp32 (training) or bf16 (serving) hashes alike.
        # Row blocks, not the whole tensor: an fp32 copy of RoBERTa's embeddings would be 154 MB at load.
        for block in tensor.detach().split(_FINGERPRINT_ROWS):
            rounded = block.to(torch.bfloat16).float().cpu().contiguous()
            digest.update(rounded.numpy().tobytes())
    return {
        "config": hashlib.sha256(json.dumps(arch, sort_keys=True).encode()).hexdigest()[:16],
        "weights": digest.hexdigest()[:16],
    }


def check_base(adapter_dir: Path, meta: ModelMeta, base_name: str, found: dict[str, str]) -> None:
    """An adapter only means something on the weights it was trained on: refuse another base
    (``found``: the fingerprint of the base at hand, :func:`base_fingerprint`)."""
    if meta.base_fingerprint is None:  # trained before loraner recorded fingerprints
        return
    if found != meta.base_fingerprint:
        trained_on = meta.base_model or "an unrecorded base"
        raise ModelError(
            f"{adapter_dir} was trained on {trained_on} (fingerprint {meta.base_fingerprint}), "
            f"but the base {base_name} has fingerprint {found}: load it onto the base it was trained on"
        )
