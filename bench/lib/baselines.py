"""The reference deployment every speed figure is compared with: tokenize one text, truncate at 512
tokens, one PyTorch fp32 forward pass, argmax."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.lib.models import MAX_LENGTH


def load_torch(model_dir: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForTokenClassification.from_pretrained(str(model_dir)).eval()
    return model, tokenizer


def reference_calls(
    model: Any, tokenizer: Any
) -> tuple[Callable[[Sequence[str]], Any], Callable[[str], Any]]:
    """``(all texts, one text)`` of the reference loop over a loaded model."""
    import torch

    def one(text: str) -> Any:
        enc = tokenizer(text, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
        with torch.inference_mode():
            return model(**enc).logits.argmax(-1)

    def run(texts: Sequence[str]) -> list[Any]:
        return [one(t) for t in texts]

    return run, one


def reference_loop(model_dir: Path) -> tuple[Callable[[Sequence[str]], Any], Callable[[str], Any]]:
    return reference_calls(*load_torch(model_dir))
