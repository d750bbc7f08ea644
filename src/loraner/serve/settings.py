"""Service settings: defaults < ``LORANER_*`` environment variables < explicit overrides (CLI flags).

Plain pydantic (no pydantic-settings dependency): every field ``name`` reads ``LORANER_NAME``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from loraner.errors import ConfigError

ENV_PREFIX = "LORANER_"


class ServeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str | None = Field(None, description="model directory (merged, exported ONNX, or a HF checkpoint)")
    backend: Literal["auto", "torch", "onnx"] = "auto"
    device: str = "cpu"
    model_name: str | None = Field(None, description="name shown in responses (default: the model's own)")
    threads: int | None = Field(
        None, ge=1, description="intra-op threads of the runtime (default: all cores)"
    )
    batch_size: int = Field(16, ge=1, description="windows per forward pass")
    max_batch_tokens: int | None = Field(
        512, ge=1, description="padded tokens per forward pass: bounds the memory one long text takes"
    )
    max_length: int | None = Field(None, ge=8)
    stride: int | None = Field(None, ge=0)
    aggregation: Literal["first", "average", "max"] = "first"
    o_threshold: float | None = Field(None, gt=0, le=1)
    word_split: Literal["conll", "tokenizer"] | None = Field(
        None, description="what a word is; default: what training recorded in loraner.json"
    )

    max_text_chars: int = Field(100_000, ge=1, description="longest text accepted, in characters")
    max_batch: int = Field(64, ge=1, description="most texts in one /predict/batch request")
    max_body_bytes: int = Field(2_000_000, ge=64, description="larger request bodies get 413")
    concurrency: int = Field(2, ge=1, description="inference calls running at once (threads)")
    microbatch_ms: float = Field(
        0.0, ge=0, description="collect concurrent /predict calls this long; 0 = off"
    )
    microbatch_max: int = Field(32, ge=1, description="flush a micro-batch at this many texts")
    deid: bool = Field(True, description="mount POST /deidentify (LORANER_DEID=false turns it off)")
    deid_config: str | None = Field(
        None, description="de-identification YAML (default: every type replaced by [TYPE], no patterns)"
    )

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    log_level: str = "info"
    log_json: bool = True
    load_in_background: bool = Field(
        True, description="accept connections while the model loads (/ready says 503 until done)"
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ServeSettings:
        """Environment first, then ``overrides`` whose value is not None (unset CLI flags)."""
        environ = os.environ if environ is None else environ
        raw: dict[str, Any] = {}
        for name in cls.model_fields:
            value = environ.get(ENV_PREFIX + name.upper())
            if value is not None and value.strip() != "":
                raw[name] = value.strip()
        raw.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{ENV_PREFIX}{str(err['loc'][0]).upper() if err['loc'] else ''}: {err['msg']}"
                for err in exc.errors()
            )
            raise ConfigError(f"service settings: {problems}") from exc
