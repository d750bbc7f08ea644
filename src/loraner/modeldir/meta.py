"""``loraner.json``: what a model needs besides its weights to predict as it was trained, and what a
directory without it (a plain Hugging Face checkpoint) says instead, through ``config.json``.

Reads JSON only (no torch, no weights), so the ONNX service can use it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from loraner import __version__, defaults
from loraner.data.registry import reader_unit
from loraner.data.words import WordSplit
from loraner.errors import ConfigError, ModelError
from loraner.modeldir.files import CONFIG_FILE, META_FILE, check_readable, read_json
from loraner.settings import window_problem

log = logging.getLogger(__name__)

# How ``model.onnx`` may be quantized by ``loraner export onnx`` (dynamic: weights int8, activations
# quantized per call).
Quantization = Literal["int8"]
QUANTIZATIONS: tuple[str, ...] = get_args(Quantization)

# Positions of BERT-style encoders: the window of a checkpoint that does not say.
MAX_POSITIONS = 512


class ModelMeta(BaseModel):
    """``loraner.json``: what a model needs besides its weights to predict as it was trained.

    Unknown keys (from a newer loraner) are ignored with a warning rather than refused, so an older
    service can still serve a newer model.
    """

    model_config = ConfigDict(extra="ignore", protected_namespaces=())

    loraner_version: str = __version__
    name: str | None = None
    labels: list[str] = Field(..., min_length=1)
    max_length: int | None = Field(
        None, description=f"window in tokens; None: the tokenizer's limit, at most {MAX_POSITIONS} positions"
    )
    stride: int = defaults.STRIDE.value
    # A checkpoint without loraner.json gets "conll": published NER checkpoints are nearly all trained on
    # word-level corpora (CoNLL, OntoNotes, WikiANN) with labels on first subwords.
    word_split: WordSplit = "conll"
    data_format: str | None = None
    label_all_subwords: bool = False
    lora: bool = False
    base_model: str | None = None
    base_fingerprint: dict[str, str] | None = None
    config: dict[str, Any] | None = Field(None, description="the experiment config of the training run")
    merged_from: str | None = None
    onnx: dict[str, Any] | None = None
    openvino: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _fill_from_run_config(cls, data: Any) -> Any:
        """loraner.json files written before ``data_format``/``word_split``/``name`` were recorded."""
        if not isinstance(data, dict):
            return data
        run = data.get("config") if isinstance(data.get("config"), dict) else {}
        data = dict(data)
        data.setdefault("name", run.get("name"))
        fmt = data.get("data_format") or (run.get("data") or {}).get("format")
        if fmt:
            data["data_format"] = fmt
            if "word_split" not in data:
                data["word_split"] = "conll" if _unit(fmt) == "words" else "tokenizer"
        return data

    @model_validator(mode="after")
    def _window(self) -> ModelMeta:
        problem = window_problem(self.max_length, self.stride) if self.max_length else None
        if problem is None and self.stride < 0:
            problem = f"stride must be >= 0 (got {self.stride})"
        if problem:
            raise ValueError(problem)
        return self

    def with_overrides(
        self, *, max_length: int | None = None, stride: int | None = None, word_split: str | None = None
    ) -> ModelMeta:
        """This metadata with the caller's choices (None keeps the recorded value), checked again."""
        updates = {"max_length": max_length, "stride": stride, "word_split": word_split}
        raw = {**self.model_dump(), **{k: v for k, v in updates.items() if v is not None}}
        try:
            return ModelMeta.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(_problems(exc)) from None

    def window(self, tokenizer: Any) -> int:
        """The window size: the recorded one, else the tokenizer's, never above 512 positions."""
        if self.max_length:
            return self.max_length
        limit = getattr(tokenizer, "model_max_length", None) or MAX_POSITIONS
        return int(min(limit, MAX_POSITIONS))


def _unit(data_format: str) -> str | None:
    try:
        return reader_unit(data_format)
    except ConfigError:  # a format of another loraner version: fall back to the default
        return None


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg'].removeprefix('Value error, ')}"
        for err in exc.errors()
    )


# --------------------------------------------------------------------------- reading and writing


def read_meta(model_dir: Path, labels: list[str] | None = None) -> ModelMeta | None:
    """``loraner.json`` of ``model_dir``, or None when the directory has none. ``labels``: the list to
    use when the file records none (``config.json``'s, for a checkpoint that only adds a few settings).
    The one reader of the file."""
    path = Path(model_dir) / META_FILE
    raw = read_json(path)
    if not raw:
        return None
    if labels and not raw.get("labels"):
        raw["labels"] = labels
    unknown = sorted(set(raw) - set(ModelMeta.model_fields))
    if unknown:
        log.warning("%s: ignoring keys this loraner version does not know: %s", path, ", ".join(unknown))
    try:
        return ModelMeta.model_validate(raw)
    except ValidationError as exc:
        raise ModelError(f"{path}: {_problems(exc)}") from None


def write_meta(model_dir: Path, meta: ModelMeta) -> Path:
    path = Path(model_dir) / META_FILE
    path.write_text(meta.model_dump_json(indent=2, exclude_none=True), encoding="utf-8")
    return path


def labels_from_config(config: dict[str, Any], source: Path) -> list[str]:
    id2label = config.get("id2label") or {}
    try:
        return [id2label[k] for k in sorted(id2label, key=int)]
    except ValueError:
        raise ModelError(f"{source}: id2label has a key that is not an integer") from None


def model_meta(model_dir: str | Path) -> ModelMeta:
    """What ``model_dir`` says about itself: ``loraner.json``, else ``config.json``'s labels and the
    defaults. Fails with a message naming the directory when it holds no model or its files disagree."""
    path = check_model_dir(model_dir)
    return meta_of(path, read_json(path / CONFIG_FILE))


def check_model_dir(model_dir: str | Path) -> Path:
    """``model_dir``, a directory this process may read whole (else an error naming what it cannot)."""
    path = Path(model_dir)
    if not path.is_dir():
        raise ModelError(f"{path}: model directory not found")
    check_readable(path)
    return path


def meta_of(path: Path, config: dict[str, Any]) -> ModelMeta:
    """:func:`model_meta` of a checked directory whose ``config.json`` is ``config``."""
    config_labels = labels_from_config(config, path / CONFIG_FILE)
    meta = read_meta(path, config_labels)
    if meta is None:
        if not config and not any(path.iterdir()):
            raise ModelError(f"{path}: no model in {path} (the directory is empty)")
        if not config_labels:
            raise ModelError(
                f"{path}: not a model directory (no {META_FILE}, and no {CONFIG_FILE} with id2label)"
            )
        return ModelMeta(labels=config_labels, name=path.resolve().name)
    if config_labels and len(config_labels) != len(meta.labels):
        raise ModelError(
            f"{path}: {META_FILE} has {len(meta.labels)} labels but {CONFIG_FILE} has {len(config_labels)}"
        )
    if not meta.name:
        meta = meta.model_copy(update={"name": path.resolve().name})
    return meta


def model_type(model_dir: Path) -> str | None:
    """``config.json``'s ``model_type`` (``roberta``, ``bert``...), None where it does not say."""
    return read_json(Path(model_dir) / CONFIG_FILE).get("model_type")
