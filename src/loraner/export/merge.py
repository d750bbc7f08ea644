"""Merge LoRA adapters into their base: a plain Transformers model directory (safetensors, id2label)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from loraner.errors import ModelError
from loraner.settings import resolve_model_path

log = logging.getLogger(__name__)

META_FILE = "loraner.json"


def read_meta(model_dir: Path) -> dict[str, Any]:
    path = model_dir / META_FILE
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path}: not valid JSON ({exc})") from exc


def adapter_base_and_labels(adapter_dir: Path, base: str | None = None) -> tuple[str, list[str]]:
    """The base model and label list an adapter was trained with (from loraner.json or PEFT's config)."""
    if not (adapter_dir / "adapter_config.json").exists():
        raise ModelError(f"{adapter_dir}: no adapter_config.json — not a PEFT adapter directory")
    meta = read_meta(adapter_dir)
    peft_cfg = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    base = base or meta.get("base_model") or peft_cfg.get("base_model_name_or_path")
    labels = meta.get("labels")
    if not base:
        raise ModelError(f"{adapter_dir}: base model unknown; pass --base")
    if not labels:
        raise ModelError(f"{adapter_dir}: no label list ({META_FILE} missing); was it trained with loraner?")
    return base, labels


def load_adapter_model(adapter_dir: Path, base: str | None = None) -> Any:
    """The base model with the adapter attached (unmerged), in eval mode."""
    from peft import PeftModel
    from transformers import AutoModelForTokenClassification

    base_name, labels = adapter_base_and_labels(adapter_dir, base)
    id2label = dict(enumerate(labels))
    try:
        base_model = AutoModelForTokenClassification.from_pretrained(
            resolve_model_path(base_name),
            num_labels=len(labels),
            id2label=id2label,
            label2id={v: k for k, v in id2label.items()},
            ignore_mismatched_sizes=True,
        )
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load base model {base_name!r} for {adapter_dir}: {exc}") from exc
    return PeftModel.from_pretrained(base_model, str(adapter_dir)).eval()


def merge_adapter(adapter_dir: str | Path, output_dir: str | Path, base: str | None = None) -> Path:
    """Fold the LoRA weights into the base, save model + tokenizer + provenance to ``output_dir``."""
    from transformers import AutoTokenizer

    adapter_dir, output_dir = Path(adapter_dir), Path(output_dir)
    peft_model = load_adapter_model(adapter_dir, base)
    # safe_merge refuses NaN/inf weights instead of writing a broken model.
    merged = peft_model.merge_and_unload(safe_merge=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(output_dir), safe_serialization=True)
    AutoTokenizer.from_pretrained(str(adapter_dir)).save_pretrained(str(output_dir))
    meta = read_meta(adapter_dir)
    meta["merged_from"] = str(adapter_dir)
    (output_dir / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    log.info("merged %s into %s", adapter_dir, output_dir)
    return output_dir
