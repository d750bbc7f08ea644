"""Label Studio's ML backend API, served under ``/label-studio`` (``loraner serve --label-studio``): a
Label Studio project connected to ``http://HOST:PORT/label-studio`` gets the model's entities as
pre-annotations as its annotators open tasks.

The routes are the ones Label Studio calls (``label_studio/ml/api_connector.py``: the backend's URL with
``health``, ``setup`` and ``predict`` appended), with the bodies it sends and reads:

* ``GET health``: ``{"status": "UP", "model_class": ..., "model_version": ...}``; 503 while the model
  loads, so connecting then fails with a reason instead of a backend that answers nothing;
* ``POST setup``: ``{"project": "ID.CREATED", "schema": LABEL_CONFIG, ...}`` → ``{"model_version":
  NAME@FINGERPRINT}``; a labelling config without a ``Labels`` control on a ``Text`` object, or whose
  labels share no type with the model, is a 422 that says so;
* ``POST predict``: ``{"tasks": [{"id", "data": {...}}], "label_config": ..., "project": ..., "params":
  ...}`` → ``{"results": [one prediction per task, in order]}``, each ``{"result": [regions],
  "score": ..., "model_version": ...}`` (:func:`loraner.data.labelstudio.prediction`).

Label Studio sends an ML backend's credentials as HTTP Basic (its "Basic Authentication" user and
password), so with API keys configured these routes take a key as the Basic password, or as a bearer
token like every other route (:func:`loraner.serve.auth.require_key`). Texts are never logged.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from loraner.data.labelstudio import LabelNames, label_names, prediction
from loraner.errors import ConfigError
from loraner.inference.uncertainty import confidence
from loraner.serve.deps import ServiceDep, work_for
from loraner.serve.errors import ApiError
from loraner.serve.service import Service

PREFIX = "/label-studio"
MODEL_CLASS = "loraner"


class SetupRequest(BaseModel):
    """What Label Studio sends when a project connects (it also sends ``hostname`` and an
    ``access_token``, which are not used, nor kept)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    project: str | None = None
    label_config: str | None = Field(None, alias="schema")
    extra_params: dict[str, Any] | None = None


class SetupResponse(BaseModel):
    model_version: str


class TasksRequest(BaseModel):
    """What Label Studio sends for pre-annotations: its tasks, serialised as it exports them."""

    model_config = ConfigDict(extra="ignore")

    tasks: list[dict[str, Any]]
    label_config: str | None = None
    project: str | None = None
    params: dict[str, Any] | None = None


class TasksResponse(BaseModel):
    results: list[dict[str, Any]]


class BackendHealth(BaseModel):
    status: str
    model_class: str
    model_version: str | None = None


def _names(service: Service, label_config: str | None) -> LabelNames:
    """The project's Labels control, checked against the model's entity types."""
    if not label_config:
        return LabelNames()
    try:
        names = label_names(label_config)
    except ConfigError as exc:
        raise ApiError(422, str(exc)) from None
    types = set(service.require_predictor().info.types)
    if names.labels is not None and not names.labels & types:
        raise ApiError(
            422,
            f"the project's labels ({', '.join(sorted(names.labels))}) share no type with the model's "
            f"({', '.join(sorted(types))}): name the labels as the model's types",
        )
    return names


def _version(service: Service) -> str:
    predictor = service.require_predictor()
    if service.adapter_names:
        raise ApiError(422, "the Label Studio backend serves one model: start loraner serve with --model")
    return str(getattr(predictor, "version", service.model_name))


def _texts(tasks: list[dict[str, Any]], names: LabelNames, limit: int) -> list[str]:
    texts = []
    for number, task in enumerate(tasks):
        data = task.get("data")
        text = data.get(names.text_field) if isinstance(data, dict) else None
        where = f"task {task.get('id', number)}"
        if not isinstance(text, str):
            raise ApiError(422, f"{where}: no text in data.{names.text_field} (the Text object's value)")
        if len(text) > limit:
            raise ApiError(422, f"{where}: the text has {len(text)} characters; the limit is {limit}")
        texts.append(text)
    return texts


def label_studio_router(service: Service) -> APIRouter | None:
    """The ML backend routes, when ``LORANER_LABEL_STUDIO`` is on."""
    if not service.settings.label_studio:
        return None
    router = APIRouter(prefix=PREFIX, tags=["label-studio"])

    @router.get(
        "/health", response_model=BackendHealth, summary="Label Studio ML backend: health (503 while loading)"
    )
    async def health(service: ServiceDep) -> JSONResponse:
        if not service.ready:
            body = BackendHealth(
                status="failed" if service.load_error else "loading", model_class=MODEL_CLASS
            )
            return JSONResponse(body.model_dump(), status_code=503)
        return JSONResponse(
            BackendHealth(status="UP", model_class=MODEL_CLASS, model_version=_version(service)).model_dump()
        )

    @router.post("/setup", response_model=SetupResponse, summary="Label Studio ML backend: connect a project")
    async def setup(body: SetupRequest, service: ServiceDep) -> SetupResponse:
        _names(service, body.label_config)
        return SetupResponse(model_version=_version(service))

    @router.post(
        "/predict", response_model=TasksResponse, summary="Label Studio ML backend: pre-annotate tasks"
    )
    async def predict(body: TasksRequest, request: Request, service: ServiceDep) -> TasksResponse:
        names = _names(service, body.label_config)
        version = _version(service)
        settings = service.settings
        texts = _texts(body.tasks, names, settings.max_text_chars)
        chars = sum(map(len, texts))
        if chars > settings.max_request_chars:
            raise ApiError(
                413,
                f"the tasks have {chars} characters of text; the limit is {settings.max_request_chars} per "
                "request (LORANER_MAX_REQUEST_CHARS): retrieve predictions for fewer tasks at a time",
            )
        request.state.texts, request.state.text_chars = len(texts), chars
        work = work_for(request, service)
        aggregation = str(getattr(service.predictor, "aggregation", "first"))
        results = []
        for start in range(0, len(texts), settings.max_batch):
            chunk = texts[start : start + settings.max_batch]
            analyses = await service.analyze_batch(chunk, work=work)
            results += [
                prediction(a.entities, names, version, confidence(text, a, aggregation).value)
                for text, a in zip(chunk, analyses, strict=True)
            ]
        return TasksResponse(results=results)

    return router
