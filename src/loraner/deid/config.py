"""De-identification settings (``configs/deid.yaml``): which operator handles which entity type.

Every section forbids unknown keys so a typo fails loudly instead of silently leaving PHI in place.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from loraner.deid.operators import (
    OPERATOR_NAMES,
    Operator,
    OperatorConfig,
    PseudonymizeOperator,
    ReplaceOperator,
)
from loraner.errors import ConfigError
from loraner.settings import OThreshold, Strict, find_config, load_yaml

DEFAULT_TYPES = ("ID", "DATE", "LOC", "PATIENT", "AGE", "PHONE")
DEFAULT_SECRET_ENV = "LORANER_DEID_SECRET"
RECOGNIZER_NAMES = ("phone", "fnr", "date")


class RecognizerConfig(Strict):
    """Pattern recognisers fused with the model's spans for extra recall (off unless ``enabled``)."""

    enabled: bool = False
    phone: bool = True
    fnr: bool = True
    date: bool = True
    labels: dict[str, str] = Field(
        default_factory=lambda: {"phone": "PHONE", "fnr": "ID", "date": "DATE"},
        description="entity type each recogniser emits (match your model's label names)",
    )

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(v) - set(RECOGNIZER_NAMES))
        if unknown:
            known = ", ".join(RECOGNIZER_NAMES)
            raise ValueError(f"unknown recogniser {unknown[0]!r} in labels; known: {known}")
        return {"phone": "PHONE", "fnr": "ID", "date": "DATE", **v}


def _shorthand(value: Any) -> Any:
    """``PATIENT: pseudonymize`` means ``PATIENT: {operator: pseudonymize}``."""
    return {"operator": value} if isinstance(value, str) else value


class DeidConfig(Strict):
    """Operators per entity type, plus the settings they share.

    - ``types``: the known entity types; a ``per_type`` key outside it is an error (catches ``PATIENTS``).
      Spans of any other type are still de-identified, with ``default``.
    - ``secret_env``: environment variable holding the secret for ``hash`` and for keyed pseudonyms.
    - ``consistent_across_documents``: pseudonyms and date offsets derived from HMAC(secret, ·), hence the
      same in every document and process (needs the secret). Otherwise they are random per call
      (``deidentify``) or per batch (``deidentify_batch``).
    - ``include_original``: copy the original span text into each result item. Sensitive; off by default.
    - ``o_threshold``: O-label probability cut-off for the predictor (not used here, only carried for
      whoever runs the detector): a word is tagged ``O`` only when P(O) >= o_threshold, otherwise its
      best entity label wins. Raising it trades precision for recall, the usual choice for
      de-identification. ``null`` = the predictor's own setting.
    - ``recognizers``: pattern recognisers fused with the model output (see :mod:`loraner.deid.recognizers`).
    - ``tidy``: model spans cut at line breaks and trimmed of edge separators (see
      :func:`loraner.deid.spans.tidy_spans`).
    - ``propagate``: types whose predicted names count wherever else they occur in the same text
      (see :mod:`loraner.deid.propagation`); part of the model's output, on with or without recognisers.
    """

    types: list[str] = Field(default_factory=lambda: list(DEFAULT_TYPES), min_length=1)
    default: OperatorConfig = Field(default_factory=ReplaceOperator)
    per_type: dict[str, OperatorConfig] = Field(default_factory=dict)
    secret_env: str = DEFAULT_SECRET_ENV
    consistent_across_documents: bool = False
    include_original: bool = False
    o_threshold: OThreshold | None = None
    recognizers: RecognizerConfig = Field(default_factory=RecognizerConfig)
    tidy: bool = Field(False, description="cut model spans at line breaks and trim separators at their edges")
    propagate: list[str] = Field(
        default_factory=list,
        description="types whose predicted names are also PHI wherever else they appear in the text",
    )

    @model_validator(mode="before")
    @classmethod
    def _expand_shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            if "default" in data:
                data["default"] = _shorthand(data["default"])
            if isinstance(data.get("per_type"), dict):
                data["per_type"] = {k: _shorthand(v) for k, v in data["per_type"].items()}
        return data

    @field_validator("secret_env")
    @classmethod
    def _env_name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
            raise ValueError(f"{v!r} is not a valid environment variable name")
        return v

    @model_validator(mode="after")
    def _known_types(self) -> DeidConfig:
        known = set(self.types)
        named = [("per_type", name) for name in self.per_type] + [("propagate", t) for t in self.propagate]
        for field, name in named:
            if name not in known:
                raise ValueError(
                    f"unknown entity type {name!r} in {field}; known: {', '.join(sorted(known))} "
                    "(add it to 'types' if it is intended)"
                )
        return self

    def operator_for(self, entity_type: str) -> Operator:
        return self.per_type.get(entity_type, self.default)

    def configured(self) -> list[tuple[str, Operator]]:
        """Every configured operator with where it is configured (for error messages)."""
        return [("default", self.default), *((f"per_type.{t}", op) for t, op in self.per_type.items())]

    def needs_secret(self) -> bool:
        keyed = self.consistent_across_documents
        return any(
            op.needs_secret or (keyed and isinstance(op, PseudonymizeOperator)) for _, op in self.configured()
        )


def resolve_secret(config: DeidConfig, environ: Mapping[str, str] | None = None) -> bytes | None:
    """The secret from ``config.secret_env``; :class:`ConfigError` if an operator needs it and it is missing.

    Called before any text is processed so a missing secret fails the whole run, not half a batch.
    """
    env = os.environ if environ is None else environ
    raw = env.get(config.secret_env, "")
    secret = raw.encode("utf-8") if raw else None
    for where, op in config.configured():
        op.check(secret=secret, secret_env=config.secret_env, where=where)
        if config.consistent_across_documents and isinstance(op, PseudonymizeOperator) and not secret:
            raise ConfigError(
                f"{where}: consistent_across_documents needs a secret for keyed pseudonyms, but environment "
                f"variable {config.secret_env} is not set (or empty)"
            )
    return secret


def _path(loc: list[str]) -> str:
    """Dotted field path minus pydantic's union tag: ``per_type.ID.mask.char`` → ``per_type.ID.char``."""
    tag_at = 1 if loc[:1] == ["default"] else 2 if loc[:1] == ["per_type"] else -1
    if 0 <= tag_at < len(loc) and loc[tag_at] in OPERATOR_NAMES:
        loc = loc[:tag_at] + loc[tag_at + 1 :]
    return ".".join(loc) or "(top level)"


def _describe(err: Mapping[str, Any]) -> str:
    loc = [str(p) for p in err["loc"]]
    kind = err["type"]
    if kind == "extra_forbidden":
        renamed = " (renamed o_threshold)" if loc == ["threshold"] else ""
        return f"{_path(loc[:-1])}: unknown field {loc[-1]!r}{renamed}"
    where = _path(loc)
    if kind == "union_tag_invalid":
        tag = err.get("ctx", {}).get("tag")
        return f"{where}: unknown operator {tag!r}; known: {', '.join(OPERATOR_NAMES)}"
    if kind == "union_tag_not_found":
        return f"{where}: missing 'operator' (one of {', '.join(OPERATOR_NAMES)})"
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"{where}: {msg}" if loc else msg


def validate_deid_config(raw: Any, source: str = "deid config") -> DeidConfig:
    """Validate a parsed mapping; errors become one :class:`ConfigError` naming ``source`` and each field."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: top level must be a mapping")
    try:
        return DeidConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(_describe(err) for err in exc.errors())
        raise ConfigError(f"{source}: {problems}") from exc


def load_deid_config(path: str | Path) -> DeidConfig:
    """Read and validate a de-identification YAML file, or the shipped preset ``deid``
    (``configs/deid.yaml``)."""
    path = find_config(path)
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: deid config file not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return validate_deid_config(raw, str(path))


__all__ = [
    "DEFAULT_SECRET_ENV",
    "DEFAULT_TYPES",
    "DeidConfig",
    "RecognizerConfig",
    "load_deid_config",
    "resolve_secret",
    "validate_deid_config",
]
