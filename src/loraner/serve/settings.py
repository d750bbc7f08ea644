"""Service settings: defaults < ``LORANER_*`` environment variables < explicit overrides (CLI flags).

pydantic-settings reads the environment: every field ``name`` reads ``LORANER_NAME`` (an empty value
counts as unset).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from loraner import defaults
from loraner.data.words import WordSplit
from loraner.errors import ConfigError
from loraner.inference.backends import BackendName, BaseQuantization, DType
from loraner.inference.decoding import Aggregation
from loraner.settings import OThreshold

ENV_PREFIX = "LORANER_"
# What a browser sends as Origin: scheme://host[:port] (an IPv6 host in brackets), no path.
ORIGIN = re.compile(r"https?://(\[[0-9A-Fa-f:.]+\]|[^/\s:\[\]]+)(:\d{1,5})?")
LogLevel = Literal["critical", "error", "warning", "info", "debug"]
AS_TRAINED = "default: as the model was trained"


@dataclass(frozen=True)
class Flag:
    """Marks a setting that ``loraner serve`` also takes as an option, ``--name`` (and ``alias``): its
    help is the field's description, its default the field's. A list field is one comma-separated value,
    as in its variable, unless ``repeat`` (the option is given once per item)."""

    alias: str | None = None
    repeat: bool = False


FLAG = Flag()


class ServeSettings(BaseSettings):
    """Everything the service is configured with: each field is read from a ``LORANER_<FIELD>``
    environment variable, and ``loraner serve``'s options override them (:meth:`from_env`)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_ignore_empty=True, extra="forbid", protected_namespaces=()
    )

    model: Annotated[str | None, Flag(alias="-m")] = Field(
        None,
        description="model directory (merged, exported ONNX, or a HF checkpoint), or a hub id "
        "OWNER/NAME[@REVISION]",
    )
    base: Annotated[str | None, FLAG] = Field(
        None, description="base model of the LoRA adapters (path, hub id or pkg:MODULE); instead of model"
    )
    adapters: Annotated[str | None, FLAG] = Field(
        None, description="folder of adapters, one per sub-folder, named after it"
    )
    adapter: Annotated[list[str], NoDecode, Flag(repeat=True)] = Field(
        default_factory=list,
        description="an adapter as NAME=PATH (the option repeats; comma-separated in the variable)",
    )
    default_adapter: Annotated[str | None, FLAG] = Field(
        None, description="adapter for requests that name none"
    )
    max_loaded_adapters: Annotated[int, FLAG] = Field(
        defaults.MAX_LOADED_ADAPTERS.value, ge=1, description=defaults.MAX_LOADED_ADAPTERS.help
    )
    base_quantization: Annotated[BaseQuantization, FLAG] = Field(
        defaults.BASE_QUANTIZATION.value, description=defaults.BASE_QUANTIZATION.help
    )
    dtype: Annotated[DType, FLAG] = Field(defaults.DTYPE.value, description=defaults.DTYPE.help)
    compile: Annotated[bool, FLAG] = Field(defaults.COMPILE.value, description=defaults.COMPILE.help)
    backend: Annotated[BackendName, FLAG] = Field(defaults.BACKEND.value, description=defaults.BACKEND.help)
    device: str = defaults.DEVICE.value
    model_name: str | None = Field(None, description="name shown in responses (default: the model's own)")
    threads: Annotated[int | None, FLAG] = Field(None, ge=1, description=defaults.THREADS.help)
    batch_size: Annotated[int, FLAG] = Field(
        defaults.BATCH_SIZE.value, ge=1, description=defaults.BATCH_SIZE.help
    )
    max_batch_tokens: Annotated[int | None, FLAG] = Field(
        defaults.MAX_BATCH_TOKENS.value, ge=1, description=defaults.MAX_BATCH_TOKENS.help
    )
    max_length: int | None = Field(None, description=f"{defaults.MAX_LENGTH.help}; {AS_TRAINED}")
    stride: Annotated[int | None, FLAG] = Field(None, description=f"{defaults.STRIDE.help}; {AS_TRAINED}")
    aggregation: Annotated[Aggregation, FLAG] = Field(
        defaults.AGGREGATION.value, description=defaults.AGGREGATION.help
    )
    o_threshold: OThreshold | None = None
    word_split: Annotated[WordSplit | None, FLAG] = Field(None, description=defaults.WORD_SPLIT.help)

    max_text_chars: int = Field(100_000, ge=1, description="longest text accepted, in characters")
    max_batch: int = Field(64, ge=1, description="most texts in one /predict/batch request")
    max_body_bytes: int = Field(2_000_000, ge=64, description="larger request bodies get 413")
    max_request_chars: int = Field(
        200_000,
        ge=1,
        description="characters of text in one request, all texts together: more gets 413 (bounds its cost)",
    )
    concurrency: Annotated[int, FLAG] = Field(
        2, ge=1, description="inference calls running at once (threads)"
    )
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
    microbatch_ms: Annotated[float, FLAG] = Field(
        0.0, ge=0, description="collect concurrent /predict calls this long; 0 = off"
    )
    microbatch_max: int = Field(32, ge=1, description="flush a micro-batch at this many texts")
    deid: bool = Field(True, description="mount POST /deidentify (LORANER_DEID=false turns it off)")
    deid_config: str | None = Field(
        None, description="de-identification YAML (default: every type replaced by [TYPE], no patterns)"
    )

    label_studio: Annotated[bool, FLAG] = Field(
        False,
        description="serve Label Studio's ML backend API under /label-studio (connect a project to "
        "http://HOST:PORT/label-studio; with API keys, a key as the Basic Authentication password)",
    )

    api_keys: Annotated[list[SecretStr], NoDecode, FLAG] = Field(
        default_factory=list,
        description="API keys, comma-separated; with none, anyone may call the service (a flag shows in the "
        "process list: prefer the variable or api_keys_file)",
    )
    api_keys_file: Annotated[Path | None, FLAG] = Field(
        None, description="file of API keys, one per line (blank lines and # comments ignored)"
    )
    protect_metrics: Annotated[bool, FLAG] = Field(
        True, description="with API keys: /metrics needs a key too"
    )
    protect_demo: Annotated[bool, FLAG] = Field(
        False,
        description="with API keys: /demo, /docs and /openapi.json need a key too (a browser cannot send "
        "one to open them: only behind a proxy that adds it)",
    )
    cors_origins: Annotated[list[str], NoDecode, FLAG] = Field(
        default_factory=list,
        description="origins whose web pages may call the API, comma-separated, e.g. https://app.example.org "
        "(* for any); none: no CORS headers",
    )

    host: Annotated[str, FLAG] = Field(defaults.HOST.value, description="bind address")
    port: Annotated[int, FLAG] = Field(defaults.PORT.value, ge=0, le=65535, description="port")
    log_level: Annotated[LogLevel, FLAG] = Field("info", description="log level")
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

    def predictor_options(self) -> dict[str, Any]:
        """The keyword arguments of the predictor's ``from_pretrained``: ``NERPredictor``'s for ``model``,
        ``MultiAdapterPredictor``'s for ``base`` (its adapters come from
        ``inference.adapters.named_adapters``)."""
        shared = {
            "device": self.device,
            "dtype": self.dtype,
            "threads": self.threads,
            "batch_size": self.batch_size,
            "max_batch_tokens": self.max_batch_tokens,
            "aggregation": self.aggregation,
            "o_threshold": self.o_threshold,
        }
        if self.base:
            return shared | {
                "default": self.default_adapter,
                "max_loaded": self.max_loaded_adapters,
                # Unset: the backend's own (an ONNX base graph is as it was exported).
                "quantization": self.base_quantization
                if "base_quantization" in self.model_fields_set
                else None,
                "backend": self.backend,
            }
        return shared | {
            "backend": self.backend,
            "max_length": self.max_length,
            "stride": self.stride,
            "word_split": self.word_split,
            "compile": self.compile,
        }

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
