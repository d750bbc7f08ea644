"""Request and response bodies. Limits that depend on settings (text length, batch size) are checked
in the routes, so one schema serves every configuration and the OpenAPI page stays static."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator, model_validator

from loraner.settings import Strict
from loraner.types import surrogate_problem


def _not_blank(text: str) -> str:
    """Non-blank, valid Unicode (a lone surrogate would fail the tokenizer, and with it a micro-batch)."""
    if not text.strip():
        raise ValueError("must not be empty or only whitespace")
    problem = surrogate_problem(text)
    if problem:
        raise ValueError(problem)
    return text


MAX_ADAPTER_NAME = 128
AdapterName = Annotated[StrictStr, Field(min_length=1, max_length=MAX_ADAPTER_NAME)]
ADAPTER_FIELD = "Adapter to use (GET /adapters lists them); default: the service's default adapter"


class PredictRequest(Strict):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"text": "José Müller flew from Oslo to São Paulo."}]},
    )

    text: StrictStr = Field(..., description="Raw text; offsets in the answer index into it")
    adapter: AdapterName | None = Field(None, description=ADAPTER_FIELD)

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, text: str) -> str:
        return _not_blank(text)


class BatchRequest(Strict):
    texts: list[StrictStr] = Field(..., min_length=1, description="Raw texts, answered in the same order")
    adapter: AdapterName | None = Field(None, description=f"{ADAPTER_FIELD}; the same for every text")
    adapters: list[AdapterName | None] | None = Field(
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


class EntityOut(BaseModel):
    type: str
    text: str = Field(..., description="Always equal to the request text[start:end]")
    start: int = Field(..., description="Character offset (Unicode code points) of the first character")
    end: int = Field(..., description="Character offset one past the last character")
    score: float = Field(..., description="Mean probability of the chosen labels over the entity's words")


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
        None, description="With 404 for an unknown adapter: the adapters there are"
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


class AdaptersResponse(BaseModel):
    adapters: list[AdapterOut] = Field(..., description="Empty when the service serves one model")
    default: str | None
