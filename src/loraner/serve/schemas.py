"""Request and response bodies, and the limits their OpenAPI schema states.

The bodies validate what never changes (types, non-blank text, one adapter choice, one key per text).
The limits a configuration sets (text length, batch size, adapter names) are checked in code
(``loraner.serve.deps``), so one model serves every configuration; the fields that carry them are
marked here (``Text``, ``PER_TEXT``, ``AdapterChoice``, ...), and ``stating(limits)`` puts the values
into the schema a service generates.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    StrictStr,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from loraner.settings import Strict
from loraner.types import Entity, surrogate_problem

# --------------------------------------------------------------------------- limits

MAX_ADAPTER_NAME = 128
MAX_KEY_CHARS = 256  # de-identification's document keys
NOT_BLANK = r"\S"  # what the text validators enforce: at least one non-whitespace character


@dataclass(frozen=True)
class Limits:
    """What a service accepts beyond the bodies' own rules: texts of at most ``max_text_chars``,
    batches of at most ``max_batch`` texts, adapter names among ``adapters`` (none: a single model), and
    whether a request may leave the adapter out (only with a ``default_adapter``, or one adapter)."""

    max_text_chars: int
    max_batch: int
    adapters: tuple[str, ...] = ()
    default_adapter: str | None = None

    @property
    def adapter_required(self) -> bool:
        """Requests must name an adapter: several are served and none is the default."""
        return len(self.adapters) > 1 and self.default_adapter is None


_STATED: ContextVar[Limits | None] = ContextVar("loraner_serve_limits", default=None)


@contextlib.contextmanager
def stating(limits: Limits) -> Iterator[None]:
    """JSON schemas generated inside state ``limits`` on the marked fields (outside: the plain types)."""
    token = _STATED.set(limits)
    try:
        yield
    finally:
        _STATED.reset(token)


@dataclass(frozen=True)
class _Stated:
    """A field's JSON-schema rule filled in from the limits being stated; validation is untouched."""

    rule: Callable[[JsonSchemaValue, Limits], JsonSchemaValue]

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        limits = _STATED.get()
        return schema if limits is None else self.rule(schema, limits)


def _text_rule(schema: JsonSchemaValue, limits: Limits) -> JsonSchemaValue:
    return {**schema, "minLength": 1, "maxLength": limits.max_text_chars, "pattern": NOT_BLANK}


def _per_text_rule(schema: JsonSchemaValue, limits: Limits) -> JsonSchemaValue:
    return {**schema, "maxItems": limits.max_batch}


def _adapter_per_text_rule(schema: JsonSchemaValue, limits: Limits) -> JsonSchemaValue:
    return {**schema, "minItems": 1, "maxItems": limits.max_batch}


def _adapter_rule(_schema: JsonSchemaValue, limits: Limits) -> JsonSchemaValue:
    # The adapters this service has; a single model has none, and only null is valid. Null (the
    # default adapter) only where there is one.
    if not limits.adapters:
        return {"type": "null"}
    name = {"type": "string", "enum": list(limits.adapters)}
    return name if limits.adapter_required else {"anyOf": [name, {"type": "null"}]}


def _batch_adapter_rule(schema: JsonSchemaValue, limits: Limits) -> JsonSchemaValue:
    # A batch's one-for-all adapter may be null even without a default: "adapters" names them instead.
    if not limits.adapters:
        return {"type": "null"}
    return {"anyOf": [{"type": "string", "enum": list(limits.adapters)}, {"type": "null"}]}


def _requests_name_adapters(examples: list[dict[str, Any]], *, batch: bool) -> Callable[..., None]:
    """A request model's ``json_schema_extra``: its examples, and what the stated limits require of the
    adapter fields as a whole. Without a default adapter a request names one: ``adapter`` is required
    (a batch: ``adapter`` or ``adapters``); a batch never names both (the server refuses it, 422)."""

    def extra(schema: dict[str, Any]) -> None:
        limits = _STATED.get()
        required = limits is not None and limits.adapter_required
        first = {"adapter": limits.adapters[0]} if limits is not None and required else {}
        schema["examples"] = [{**example, **first} for example in examples]
        if limits is None or not limits.adapters:
            return
        if not batch:
            if required:
                schema["required"] = [*schema.get("required", []), "adapter"]
            return
        named = {"adapter": {"type": "string"}, "adapters": {"type": "array"}}
        schema["not"] = {"required": ["adapter", "adapters"], "properties": named}
        if required:
            schema["anyOf"] = [
                {"required": [field], "properties": {field: rule}} for field, rule in named.items()
            ]

    return extra


# Text within the limits: non-blank, at most max_text_chars (a request's text, or a part of one).
TEXT_LIMITS = _Stated(_text_rule)
Text = Annotated[StrictStr, TEXT_LIMITS]
# A list with one item per text of a batch: at most max_batch items.
PER_TEXT = _Stated(_per_text_rule)

AdapterName = Annotated[StrictStr, Field(min_length=1, max_length=MAX_ADAPTER_NAME)]
# An adapter name, or null for the default adapter; stated as the names this service serves (null only
# where there is a default). The batch's one-for-all field is nullable in any case.
AdapterChoice = Annotated[AdapterName | None, _Stated(_adapter_rule)]
BatchAdapterChoice = Annotated[AdapterName | None, _Stated(_batch_adapter_rule)]
ADAPTER_FIELD = (
    "Adapter to use (GET /adapters lists them); default: the service's default adapter (without one, "
    "required)"
)
# Adapters named one per text: 1 to max_batch of them.
ADAPTER_PER_TEXT = _Stated(_adapter_per_text_rule)

# DeidentifyBatchRequest checks its keys' length itself (with its own message); the schema says so too.
BatchKey = Annotated[StrictStr, WithJsonSchema({"type": "string", "maxLength": MAX_KEY_CHARS})]


# --------------------------------------------------------------------------- requests


def _not_blank(text: str) -> str:
    """Non-blank, valid Unicode (a lone surrogate would fail the tokenizer, and with it a micro-batch)."""
    if not text.strip():
        raise ValueError("must not be empty or only whitespace")
    problem = surrogate_problem(text)
    if problem:
        raise ValueError(problem)
    return text


class PredictRequest(Strict):
    model_config = ConfigDict(
        json_schema_extra=_requests_name_adapters(
            [{"text": "José Müller flew from Oslo to São Paulo."}], batch=False
        ),
    )

    text: Text = Field(..., description="Raw text; offsets in the answer index into it")
    adapter: AdapterChoice = Field(None, description=ADAPTER_FIELD)

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, text: str) -> str:
        return _not_blank(text)


class BatchRequest(Strict):
    model_config = ConfigDict(
        json_schema_extra=_requests_name_adapters(
            [{"texts": ["Ola Hansen bor i Bergen.", "NRK hired Kari Nordmann."]}], batch=True
        ),
    )

    texts: Annotated[list[Text], PER_TEXT] = Field(
        ..., min_length=1, description="Raw texts, answered in the same order"
    )
    adapter: BatchAdapterChoice = Field(None, description=f"{ADAPTER_FIELD}; the same for every text")
    adapters: Annotated[list[AdapterChoice], ADAPTER_PER_TEXT] | None = Field(
        None, description="One adapter per text (instead of adapter); null items take the default"
    )

    @model_validator(mode="after")
    def _one_adapter_choice(self) -> BatchRequest:
        if self.adapter is not None and self.adapters is not None:
            raise ValueError("give adapter (one for all texts) or adapters (one per text), not both")
        if self.adapters is not None and len(self.adapters) != len(self.texts):
            raise ValueError(f"adapters has {len(self.adapters)} items but texts has {len(self.texts)}")
        return self

    def adapter_per_text(self) -> list[str | None]:
        return list(self.adapters) if self.adapters is not None else [self.adapter] * len(self.texts)

    @field_validator("texts")
    @classmethod
    def _texts_not_blank(cls, texts: list[str]) -> list[str]:
        for i, text in enumerate(texts):
            try:
                _not_blank(text)
            except ValueError as exc:
                raise ValueError(f"item {i} {exc}") from None
        return texts


class DeidentifyRequest(PredictRequest):
    # The text field and its validation are /predict's; only the document key is added.
    model_config = ConfigDict(
        json_schema_extra=_requests_name_adapters(
            [{"text": "Kari Nordmann (45 år), tlf. 912 34 567, bor i Bergen."}], batch=False
        ),
    )

    document_key: StrictStr | None = Field(
        None,
        max_length=MAX_KEY_CHARS,
        description="e.g. a patient id: same key, same date shift (with consistent_across_documents)",
    )


class DeidentifyBatchRequest(BatchRequest):
    document_keys: Annotated[list[BatchKey | None], PER_TEXT] | None = Field(
        None, description="One per text, or omitted"
    )

    @model_validator(mode="after")
    def _one_key_per_text(self) -> DeidentifyBatchRequest:
        keys = self.document_keys
        if keys is not None and len(keys) != len(self.texts):
            raise ValueError(f"document_keys has {len(keys)} items but texts has {len(self.texts)}")
        if keys is not None and any(k is not None and len(k) > MAX_KEY_CHARS for k in keys):
            raise ValueError(f"document_keys items must have at most {MAX_KEY_CHARS} characters")
        return self


# --------------------------------------------------------------------------- answers


class EntityOut(BaseModel):
    type: str
    text: Annotated[str, TEXT_LIMITS] = Field(..., description="Always equal to the request text[start:end]")
    start: int = Field(..., description="Character offset (Unicode code points) of the first character")
    end: int = Field(..., description="Character offset one past the last character")
    score: float = Field(..., description="Mean probability of the chosen labels over the entity's words")


def entities_out(entities: list[Entity]) -> list[EntityOut]:
    return [EntityOut(**e.to_dict()) for e in entities]  # type: ignore[arg-type]


class PredictResponse(BaseModel):
    entities: list[EntityOut]
    count: int
    model: str


class BatchItem(BaseModel):
    entities: list[EntityOut]
    count: int


class BatchResponse(BaseModel):
    results: list[BatchItem]
    count: int = Field(..., description="Number of texts answered")
    model: str


class ReplacedOut(BaseModel):
    type: str
    operator: str = Field(..., description="Operator applied (replace when pseudonymisation fell back)")
    start: int = Field(..., description="Offset of the replaced span in the request text")
    end: int
    new_start: int = Field(..., description="Offset of the replacement in the answer's text")
    new_end: int
    replacement: str
    original: str | None = Field(None, description="Only with include_original in the deid config")


class DeidentifiedOut(BaseModel):
    # A plain string: a rewrite breaks a request text's limits (a placeholder longer than the span it
    # replaces; redact empties a text that is one entity).
    text: str = Field(..., description="The de-identified text (may be empty or longer than the request's)")
    items: list[ReplacedOut] = Field(..., description="One per replaced span, in text order")
    entities: list[EntityOut] = Field(..., description="The spans replaced, on the request text")
    count: int = Field(..., description="Number of replaced spans")


class DeidentifyResponse(DeidentifiedOut):
    model: str


class DeidentifyBatchResponse(BaseModel):
    results: list[DeidentifiedOut]
    count: int = Field(..., description="Number of texts answered")
    model: str


class ModelInfoOut(BaseModel):
    name: str
    labels: list[str]
    types: list[str]
    backend: str
    max_length: int
    stride: int
    aggregation: str
    word_split: str = "tokenizer"


class LimitsOut(BaseModel):
    max_text_chars: int
    max_batch: int
    max_body_bytes: int
    max_request_chars: int = Field(..., description="Characters of text in one request, all texts together")
    request_timeout_s: float


class InfoResponse(BaseModel):
    service: str
    version: str
    ready: bool
    model: ModelInfoOut | None
    limits: LimitsOut
    features: list[str] = Field(..., description="Modes the demo page can offer (e.g. predict, deidentify)")


class HealthResponse(BaseModel):
    status: str
    ready: bool


class ErrorResponse(BaseModel):
    detail: str
    request_id: str | None = None
    available: list[str] | None = Field(
        None, description="With 404 for an unknown adapter, 422 for none named: the adapters there are"
    )
    adapter: str | None = Field(
        None, description="With 503 for an adapter that cannot be loaded: its name (detail says why)"
    )


class AdapterOut(BaseModel):
    name: str
    labels: list[str]
    types: list[str]
    base_model: str | None = Field(..., description="The base model the adapter was trained on")
    size_bytes: int = Field(..., description="Size of the adapter's directory on disk")
    loaded: bool = Field(
        ..., description="In memory now (adapters load on first use; the least recently used is evicted)"
    )
    loads: int = Field(
        ..., description="Times loaded since the server started (a reload after an eviction counts again)"
    )
    evictions: int = Field(
        ..., description="Times evicted to keep at most LORANER_MAX_LOADED_ADAPTERS loaded"
    )


class AdaptersResponse(BaseModel):
    adapters: list[AdapterOut] = Field(..., description="Empty when the service serves one model")
    default: str | None
