"""What a model directory says about itself: labels, window size, stride, tokenizer.

Sources in order: explicit arguments, ``loraner.json`` (written by training/merge/export), then the
Hugging Face files (``config.json`` id2label, the tokenizer's ``model_max_length``), so plain HF
token-classification checkpoints work too. Reads JSON only: no torch, no model weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loraner.errors import ModelError
from loraner.export.merge import read_meta

MAX_POSITIONS = 512
DEFAULT_STRIDE = 64
# Byte-level BPE models were trained with a space before every word (see train/model.py); raw text
# must be tokenized the same way or the first word gets a different token.
PREFIX_SPACE_MODEL_TYPES = {"roberta", "longformer", "bart", "gpt2", "deberta", "camembert", "luke"}


@dataclass(frozen=True)
class ModelSpec:
    path: Path
    labels: list[str]
    max_length: int | None  # None: take it from the tokenizer
    stride: int
    model_type: str | None
    name: str
    word_split: str  # "conll" or "tokenizer": see loraner.inference.encoding.tokenize_texts


def read_config(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "config.json"
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path}: not valid JSON ({exc})") from exc


def labels_from_config(config: dict[str, Any]) -> list[str]:
    id2label = config.get("id2label") or {}
    try:
        return [id2label[k] for k in sorted(id2label, key=int)]
    except ValueError as exc:
        raise ModelError(f"config.json id2label has a non-integer key ({exc})") from exc


def model_spec(
    model_dir: str | Path,
    max_length: int | None = None,
    stride: int | None = None,
    word_split: str | None = None,
) -> ModelSpec:
    path = Path(model_dir)
    if not path.is_dir():
        raise ModelError(f"{path}: model directory not found")
    meta = read_meta(path)
    config = read_config(path)
    config_labels = labels_from_config(config)
    labels = list(meta.get("labels") or config_labels)
    if not labels:
        raise ModelError(f"{path}: no label list (neither loraner.json labels nor config.json id2label)")
    if config_labels and len(config_labels) != len(labels):
        raise ModelError(
            f"{path}: loraner.json has {len(labels)} labels but config.json has {len(config_labels)}"
        )
    return ModelSpec(
        path=path,
        labels=labels,
        max_length=max_length or meta.get("max_length"),
        stride=int(stride if stride is not None else meta.get("stride", DEFAULT_STRIDE)),
        model_type=config.get("model_type"),
        name=model_name(path, meta),
        word_split=word_split_of(meta, word_split),
    )


# Readers whose examples are words with tags (before loraner.json recorded ``word_split``).
WORD_LEVEL_FORMATS = {"conll", "fewnerd-txt", "fewnerd-hub", "hf"}


def word_split_of(meta: dict[str, Any], explicit: str | None = None) -> str:
    """How raw text becomes the units the model was trained on.

    An explicit choice wins; then what training recorded; then the data format of the run's config.
    A checkpoint with no loraner.json (a Hugging Face NER model) gets ``conll``: public NER checkpoints
    are nearly all trained on word-level corpora (CoNLL, OntoNotes, WikiANN), labelling first subwords.
    """
    choice = explicit or meta.get("word_split")
    if choice is None:
        run_config = meta.get("config") if isinstance(meta.get("config"), dict) else {}
        data_format = (run_config.get("data") or {}).get("format")
        choice = "tokenizer" if data_format and data_format not in WORD_LEVEL_FORMATS else "conll"
    return str(choice)  # NERPredictor checks it is one of WORD_SPLITS


def model_name(path: Path, meta: dict[str, Any]) -> str:
    """The experiment name training recorded; else the directory's name (``merged`` says little)."""
    run_config = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    return str(meta.get("name") or run_config.get("name") or path.resolve().name)


def tokenizer_class(model_dir: Path) -> Any:
    """The class ``tokenizer_config.json`` names, else ``AutoTokenizer``.

    ``AutoTokenizer`` imports Transformers' model-config code, which imports torch whenever it is
    installed: about 225 MB more RSS and 2 s more start-up for an ONNX service that never uses it.
    """
    import transformers

    path = model_dir / "tokenizer_config.json"
    try:
        name = json.loads(path.read_text(encoding="utf-8")).get("tokenizer_class") if path.exists() else None
    except json.JSONDecodeError:
        name = None
    found = getattr(transformers, name, None) if isinstance(name, str) else None
    return found if found is not None and hasattr(found, "from_pretrained") else transformers.AutoTokenizer


def load_tokenizer(spec: ModelSpec) -> Any:
    kwargs: dict[str, Any] = {}
    if spec.model_type in PREFIX_SPACE_MODEL_TYPES:
        kwargs["add_prefix_space"] = True
    try:
        tokenizer = tokenizer_class(spec.path).from_pretrained(str(spec.path), **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{spec.path}: cannot load the tokenizer: {exc}") from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(f"{spec.path}: a fast tokenizer (tokenizer.json) is needed for character offsets")
    return tokenizer


def effective_max_length(spec: ModelSpec, tokenizer: Any) -> int:
    """The window size: the trained one if known, else the tokenizer's, never above 512 positions."""
    if spec.max_length:
        return int(spec.max_length)
    model_max = getattr(tokenizer, "model_max_length", None) or MAX_POSITIONS
    return int(min(model_max, MAX_POSITIONS))
