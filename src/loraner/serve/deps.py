"""What route handlers receive through FastAPI's dependency injection, as ``Annotated`` types a handler
names in its signature: the service, its metrics, and a request body admitted.

Admitting a body (``one_text``, ``text_batch``) checks the limits the settings set (text length,
batch size, the request's text budget), notes its size for the access log (never the text), checks its
adapter names against the configured ones, and makes its claim on the model (``Work``: a deadline from
the request's arrival, and the stop flag the middleware sets when the client disconnects).

The getters are coroutines so FastAPI calls them on the event loop rather than in a worker thread.
Annotations here are evaluated (no ``from __future__ import annotations``): FastAPI reads the body's
model from each admission dependency's signature, where it is a variable of the factory.
"""

from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Request

from loraner.serve.errors import ApiError
from loraner.serve.metrics import Metrics
from loraner.serve.schemas import BatchRequest, PredictRequest
from loraner.serve.service import Service, Work


async def get_service(request: Request) -> Service:
    return request.app.state.service


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


ServiceDep = Annotated[Service, Depends(get_service)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]

Body = TypeVar("Body", bound=PredictRequest | BatchRequest)


@dataclass
class Admitted(Generic[Body]):
    """A request body within the service's limits: its texts, one checked adapter name (or None) per
    text, and its claim on the model."""

    body: Body
    texts: list[str]
    adapters: list[str | None]
    work: Work


def one_text(model: type[PredictRequest]) -> Any:
    """The dependency admitting a body of ``model`` (one text)."""

    async def admit(body: model, request: Request, service: ServiceDep) -> Admitted:  # type: ignore[valid-type]
        _check_length(body.text, service.settings.max_text_chars, "text")
        request.state.text_chars = len(body.text)
        _check_budget(len(body.text), service.settings.max_request_chars)
        work = work_for(request, service)
        return Admitted(body, [body.text], service.check_adapters([body.adapter]), work)

    return Depends(admit)


def text_batch(model: type[BatchRequest]) -> Any:
    """The dependency admitting a body of ``model`` (a batch of texts)."""

    async def admit(body: model, request: Request, service: ServiceDep) -> Admitted:  # type: ignore[valid-type]
        texts, limit = list(body.texts), service.settings.max_batch
        if len(texts) > limit:
            raise ApiError(422, f"texts has {len(texts)} items; the limit is {limit}")
        for i, text in enumerate(texts):
            _check_length(text, service.settings.max_text_chars, f"texts[{i}]")
        request.state.texts = len(texts)
        request.state.text_chars = sum(len(t) for t in texts)
        _check_budget(request.state.text_chars, service.settings.max_request_chars)
        work = work_for(request, service)
        return Admitted(body, texts, service.check_adapters(body.adapter_per_text()), work)

    return Depends(admit)


def work_for(request: Request, service: Service) -> Work:
    """The request's deadline (from its arrival) and the stop flag the middleware sets on disconnect."""
    stop = getattr(request.state, "stop", None)
    arrived = getattr(request.state, "arrived", None)
    work = service.new_work(stop)
    if arrived is not None:
        work.deadline = arrived + service.settings.request_timeout_s
    return work


def _check_length(text: str, limit: int, field: str) -> None:
    if len(text) > limit:
        raise ApiError(422, f"{field} has {len(text)} characters; the limit is {limit}")


def _check_budget(chars: int, limit: int) -> None:
    if chars > limit:
        raise ApiError(
            413,
            f"the request has {chars} characters of text; the limit is {limit} per request "
            "(LORANER_MAX_REQUEST_CHARS): send fewer or shorter texts",
        )
