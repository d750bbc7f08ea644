"""Service settings: defaults < ``LORANER_*`` environment variables < explicit overrides (CLI flags).

pydantic-settings reads the environment: every field ``name`` reads ``LORANER_NAME`` (an empty value
counts as unset).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from loraner.data.words import WordSplit
from loraner.errors import ConfigError
from loraner.inference.backends import COMPILE_HELP, DEFAULT_DTYPE, DTYPE_HELP, BackendName, DType
from loraner.inference.decoding import Aggregation
from loraner.inference.predictor import DEFAULT_BATCH_SIZE, DEFAULT_MAX_BATCH_TOKENS
from loraner.settings import OThreshold

ENV_PREFIX = "LORANER_"
# What a browser sends as Origin: scheme://host[:port] (an IPv6 host in brackets), no path.
ORIGIN = re.compile(r"https?://(\[[0-9A-Fa-f:.]+\]|[^/\s:\[\]]+)(:\d{1,5})?")
LogLevel = Literal["critical", "error", "warning", "info", "debug"]


class ServeSettings(BaseSettings):
    """Everything the service is configured with: each field is read from a ``LORANER_<FIELD>``
    environment variable, and ``loraner serve``'s options override them (:meth:`from_env`)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_ignore_empty=True, extra="forbid", protected_namespaces=()
    )

    model: str | None = Field(None, description="model directory (merged, exported ONNX, or a HF checkpoint)")
    base: str | None = Field(
        None, description="base model of the LoRA adapters (path, hub id or pkg:MODULE); instead of model"
    )
    adapters: str | None = Field(None, description="folder whose sub-folders are adapters, named after them")
    adapter: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="NAME=PATH adapters (comma-separated in LORANER_ADAPTER)"
    )
    default_adapter: str | None = Field(None, description="adapter for requests that name none")
    max_loaded_adapters: int = Field(
        16, ge=1, description="adapters kept loaded; the least recently used goes"
    )
    dtype: DType = Field(DEFAULT_DTYPE, description=DTYPE_HELP)
    compile: bool = Field(False, description=COMPILE_HELP)
    backend: BackendName = "auto"
    device: str = "cpu"
    model_name: str | None = Field(None, description="name shown in responses (default: the model's own)")
    threads: int | None = Field(
        None, ge=1, description="intra-op threads of the runtime (default: all cores)"
    )
    batch_size: int = Field(DEFAULT_BATCH_SIZE, ge=1, description="windows per forward pass")
    max_batch_tokens: int | None = Field(
        DEFAULT_MAX_BATCH_TOKENS,
        ge=1,
        description="padded tokens per forward pass: bounds the memory one long text takes",
    )
    max_length: int | None = Field(None, description="window size; default: what training recorded")
    stride: int | None = Field(None, description="tokens shared by windows; default: what training recorded")
    aggregation: Aggregation = "first"
    o_threshold: OThreshold | None = None
    word_split: WordSplit | None = Field(
        None, description="what a word is; default: what training recorded in loraner.json"
    )

    max_text_chars: int = Field(100_000, ge=1, description="longest text accepted, in characters")
    max_batch: int = Field(64, ge=1, description="most texts in one /predict/batch request")
    max_body_bytes: int = Field(2_000_000, ge=64, description="larger request bodies get 413")
    max_request_chars: int = Field(
        200_000,
        ge=1,
        description="characters of text in one request, all texts together: more gets 413 (bounds its cost)",
    )
    concurrency: int = Field(2, ge=1, description="inference calls running at once (threads)")
    max_queue: int = Field(
        64, ge=0, description="requests waiting for an inference slot; beyond it 503 with Retry-After"
    )
    request_timeout_s: float = Field(
        30.0, gt=0, description="a request's inference stops (503) after this long, queueing included"
    )
    body_timeout_s: float = Field(10.0, gt=0, description="time to receive a request body (else 408)")
    keep_alive_s: float = Field(5.0, gt=0, description="idle keep-alive connections close after this")
    max_connections: int = Field(
        1024,
        ge=1,
        description="open connections; more get Uvicorn's plain 503 at once (the queue sheds first, in JSON)",
    )
    shutdown_grace_s: float = Field(
        10.0, ge=0, description="on SIGTERM, time for requests in flight to finish; the rest get 503"
    )
    microbatch_ms: float = Field(
        0.0, ge=0, description="collect concurrent /predict calls this long; 0 = off"
    )
    microbatch_max: int = Field(32, ge=1, description="flush a micro-batch at this many texts")
    deid: bool = Field(True, description="mount POST /deidentify (LORANER_DEID=false turns it off)")
    deid_config: str | None = Field(
        None, description="de-identification YAML (default: every type replaced by [TYPE], no patterns)"
    )

    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="API keys (comma-separated in LORANER_API_KEYS); with none, anyone may call the service",
    )
    api_keys_file: Path | None = Field(
        None, description="file of API keys, one per line (blank lines and # comments ignored)"
    )
    protect_metrics: bool = Field(True, description="with API keys: /metrics needs a key too")
    protect_demo: bool = Field(
        False,
        description="with API keys: /demo, /docs and /openapi.json need a key too (a browser cannot send "
        "one to open them: only behind a proxy that adds it)",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="origins whose web pages may call the API (comma-separated; * for any); none: no CORS",
    )

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    log_level: LogLevel = "info"
    log_json: bool = True
    load_in_background: bool = Field(
        True, description="accept connections while the model loads (/ready says 503 until done)"
    )

    @field_validator("adapter", "api_keys", "cors_origins", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != "*" and not ORIGIN.fullmatch(origin):
                # A browser sends scheme://host[:port] exactly; a path or a trailing slash never matches.
                raise ValueError(f"{origin!r} is not an origin like https://example.org or http://host:8080")
        return value

    @field_validator("adapter")
    @classmethod
    def _name_equals_path(cls, value: list[str]) -> list[str]:
        for item in value:
            name, sep, path = item.partition("=")
            if not (sep and name.strip() and path.strip()):
                raise ValueError(f"{item!r} is not NAME=PATH")
        return value

    @model_validator(mode="after")
    def _one_kind_of_model(self) -> ServeSettings:
        if self.base and self.model:
            raise ValueError("give either model (one model) or base with adapters, not both")
        if (self.adapters or self.adapter) and not self.base:
            raise ValueError("adapters need their base model (LORANER_BASE / --base)")
        if self.base and not (self.adapters or self.adapter):
            raise ValueError(
                "a base model needs adapters (LORANER_ADAPTERS / --adapters, or --adapter NAME=PATH)"
            )
        return self

    def adapter_sources(self) -> dict[str, str]:
        """``--adapter NAME=PATH`` as a mapping (the ``--adapters`` folder is read by the predictor)."""
        return dict(item.split("=", 1) for item in self.adapter)

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_case_level(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @classmethod
    def from_env(cls, **overrides: Any) -> ServeSettings:
        """The environment, then ``overrides`` whose value is not None (unset CLI flags)."""
        try:
            return cls(**{k: v for k, v in overrides.items() if v is not None})
        except ValidationError as exc:
            problems = "; ".join(_describe(err) for err in exc.errors())
            raise ConfigError(f"service settings: {problems}") from None


def _describe(err: Any) -> str:
    name = str(err["loc"][0]) if err["loc"] else ""
    where = f"{ENV_PREFIX}{name.upper()} (--{name.replace('_', '-')})" if name else "(settings)"
    return f"{where}: {err['msg']}"
