"""A model directory resolved once: :class:`ModelDir`, the object the predictor and the backends receive.

``ModelDir.open(name)`` turns a path, ``pkg:MODULE`` or hub id into a local directory and reads what it
says about itself; everything after asks the object (its metadata, its kind, which weights it holds,
its tokenizer) instead of going back to the files. Each of its JSON files is read at most once.
"""

from __future__ import annotations

import hashlib
import shutil
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from loraner.modeldir.files import (
    CONFIG_FILE,
    META_FILE,
    ONNX_ADAPTER_FILE,
    ONNX_FILE,
    ONNX_LORA_BASE_FILE,
    TORCH_WEIGHT_PATTERNS,
    adapter_weights,
    has_onnx,
    has_onnx_lora_base,
    has_openvino,
    has_torch_weights,
    is_adapter,
    read_json,
)
from loraner.modeldir.meta import ModelMeta, check_model_dir, meta_of, write_meta
from loraner.modeldir.sources import local_model_source
from loraner.modeldir.tokenizer import tokenizer_of_dir

# What a directory holds: a LoRA adapter (its base loaded beside it), a loraner model with PyTorch
# weights (merged or trained in full; it may hold model.onnx and an OpenVINO IR too), a loraner ONNX or
# OpenVINO export without PyTorch weights, or a Hugging Face checkpoint without loraner.json.
ModelKind = Literal["adapter", "merged", "onnx", "openvino", "checkpoint"]


class ModelDir:
    """One local model directory: its path, its metadata (``loraner.json``, else ``config.json``'s
    labels and the defaults), its kind and the weights it holds. Files are read when first needed and
    kept; :meth:`open` reads and checks the metadata at once, so a directory that holds no model fails
    there, naming itself."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._readable = False

    @classmethod
    def find(cls, name_or_path: str | Path | ModelDir) -> ModelDir:
        """The directory a path, ``pkg:MODULE`` or hub id names (a hub model is downloaded into the
        cache); nothing in it read yet."""
        return name_or_path if isinstance(name_or_path, ModelDir) else cls(local_model_source(name_or_path))

    @classmethod
    def open(cls, name_or_path: str | Path | ModelDir) -> ModelDir:
        """:meth:`find`, with the metadata read and checked."""
        model = cls.find(name_or_path)
        model.meta  # noqa: B018 - read and checked now: a bad directory fails here, naming itself
        return model

    @classmethod
    def of(cls, model: str | Path | ModelDir) -> ModelDir:
        """``model`` itself, or the local directory at that path (nothing read yet)."""
        return model if isinstance(model, ModelDir) else cls(model)

    def __repr__(self) -> str:
        return f"ModelDir({str(self.path)!r})"

    def __str__(self) -> str:
        return str(self.path)

    @cached_property
    def config(self) -> dict[str, Any]:
        """``config.json`` (``{}`` where there is none)."""
        return read_json(self.path / CONFIG_FILE)

    @cached_property
    def meta(self) -> ModelMeta:
        """What the directory says about itself (:func:`~loraner.modeldir.meta.model_meta`)."""
        self.check_readable()
        return meta_of(self.path, self.config)

    @property
    def model_type(self) -> str | None:
        return self.config.get("model_type")

    @cached_property
    def recorded(self) -> bool:
        """True when loraner wrote this directory (it holds ``loraner.json``)."""
        return (self.path / META_FILE).is_file()

    @cached_property
    def is_adapter(self) -> bool:
        return is_adapter(self.path)

    @cached_property
    def has_torch_weights(self) -> bool:
        return has_torch_weights(self.path)

    @cached_property
    def has_onnx(self) -> bool:
        return has_onnx(self.path)

    @cached_property
    def has_onnx_lora_base(self) -> bool:
        """A base graph for LoRA adapters (``loraner export onnx-adapters``): served with its adapters."""
        return has_onnx_lora_base(self.path)

    @cached_property
    def has_openvino(self) -> bool:
        return has_openvino(self.path)

    @property
    def kind(self) -> ModelKind:
        if self.is_adapter:
            return "adapter"
        if not self.recorded:
            return "checkpoint"
        if self.has_torch_weights:
            return "merged"
        return "onnx" if self.has_onnx or not self.has_openvino else "openvino"

    @property
    def onnx_quantization(self) -> str:
        """How ``model.onnx`` was quantized, as ``loraner export onnx`` recorded it (``none``: unrecorded)."""
        if not self.recorded:
            return "none"
        return str((self.meta.onnx or {}).get("quantization", "none"))

    @cached_property
    def fingerprint(self) -> str:
        """A digest of the weights this directory holds (12 hex digits; for an adapter, with the base it
        was trained on): two directories with the same fingerprint predict alike. Read once, in blocks."""
        digest = hashlib.sha256()
        for path in self._weight_files():
            digest.update(path.name.encode())
            with path.open("rb") as handle:
                while block := handle.read(1 << 20):
                    digest.update(block)
        if self.is_adapter and self.meta.base_fingerprint:
            digest.update(repr(sorted(self.meta.base_fingerprint.items())).encode())
        digest.update(repr(self.meta.labels).encode())
        return digest.hexdigest()[:12]

    @property
    def version(self) -> str:
        """The model's name and fingerprint, ``NAME@FINGERPRINT``: which model made a prediction."""
        return f"{self.meta.name or self.path.name}@{self.fingerprint}"

    def _weight_files(self) -> list[Path]:
        if self.is_adapter:  # an exported adapter also holds its ONNX Runtime form
            onnx_form = self.path / ONNX_ADAPTER_FILE
            return [self.adapter_weights, *([onnx_form] if onnx_form.is_file() else [])]
        found = sorted({p for pattern in TORCH_WEIGHT_PATTERNS for p in self.path.glob(pattern)})
        found += [self.path / ONNX_FILE] if self.has_onnx else []
        return found + ([self.path / ONNX_LORA_BASE_FILE] if self.has_onnx_lora_base else [])

    @property
    def openvino_quantization(self) -> str:
        """How the OpenVINO IR was quantized, as ``loraner export openvino`` recorded it (``none``:
        fp32, or unrecorded)."""
        if not self.recorded:
            return "none"
        return str((self.meta.openvino or {}).get("quantization", "none"))

    @property
    def adapter_weights(self) -> Path:
        """The adapter's weight file (an adapter directory only)."""
        return adapter_weights(self.path)

    def check_readable(self) -> None:
        """Fails unless this is a directory whose every file this process may read, naming the first it
        may not (checked once per object)."""
        if not self._readable:
            check_model_dir(self.path)
            self._readable = True

    def load_tokenizer(self) -> Any:
        """The fast tokenizer saved in this directory (:mod:`loraner.modeldir.tokenizer`)."""
        return tokenizer_of_dir(self.path, self.model_type)


def copy_meta(source: str | Path | ModelDir, target_dir: Path, **updates: Any) -> ModelMeta:
    """The metadata of ``source`` (recorded or derived) with ``updates``, written to ``target_dir``."""
    meta = ModelDir.of(source).meta.model_copy(update=updates)
    write_meta(target_dir, meta)
    return meta


def copy_companions(
    source: ModelDir, target_dir: Path, tokenizer: Any, meta_source: ModelDir | None = None, **updates: Any
) -> ModelMeta:
    """What a graph exported from ``source`` needs beside it to load on its own: ``tokenizer`` saved,
    ``config.json`` copied and the metadata (``source``'s, or ``meta_source``'s) with ``updates`` written
    (:func:`copy_meta`)."""
    tokenizer.save_pretrained(str(target_dir))
    shutil.copyfile(source.path / CONFIG_FILE, target_dir / CONFIG_FILE)
    return copy_meta(meta_source or source, target_dir, **updates)
