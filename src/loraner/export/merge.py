"""Merge LoRA adapters into their base: a plain Transformers model directory (safetensors, id2label)."""

from __future__ import annotations

import logging
from pathlib import Path

from loraner.inference.backends import load_adapter_model
from loraner.modeldir import ModelDir, copy_meta, make_readable

log = logging.getLogger(__name__)


def merge_adapter(adapter_dir: str | Path, output_dir: str | Path, base: str | None = None) -> Path:
    """Fold the LoRA weights into the base, save model + tokenizer + provenance to ``output_dir``."""
    adapter, output_dir = ModelDir(adapter_dir), Path(output_dir)
    peft_model = load_adapter_model(adapter, base)
    # safe_merge refuses NaN/inf weights instead of writing a broken model.
    merged = peft_model.merge_and_unload(safe_merge=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(output_dir), safe_serialization=True)
    adapter.load_tokenizer().save_pretrained(str(output_dir))
    copy_meta(adapter, output_dir, merged_from=str(adapter.path), lora=False)
    make_readable(output_dir)
    log.info("merged %s into %s", adapter.path, output_dir)
    return output_dir
