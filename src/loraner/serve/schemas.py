"""Request and response bodies. Limits that depend on settings (text length, batch size) are checked
in the routes, so one schema serves every configuration and the OpenAPI page stays static."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator

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


class PredictRequest(Strict):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"text": "José Müller flew from Oslo to São Paulo."}]},
    )

    text: StrictStr = Field(..., description="Raw text; offsets in the answer index into it")

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, text: str) -> str:
        return _not_blank(text)


class BatchRequest(Strict):
    texts: list[StrictStr] = Field(..., min_length=1, description="Raw texts, answered in the same order")

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
