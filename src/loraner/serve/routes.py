"""The service's route groups, each built by a router factory that takes the ``Service``;
``loraner.serve.app.FEATURES`` lists them and says which need an API key. Handlers stay thin: what
they need comes through ``loraner.serve.deps``, the work is the service's.

``TextEndpoints`` builds the pair an operation on texts is served as (``/predict`` and
``/predict/batch``, ``/deidentify`` and ``/deidentify/batch``).

Annotations here are evaluated (no ``from __future__ import annotations``): ``TextEndpoints`` gives its
handlers the operation's body models through their signatures.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Generic, TypeVar

import fastapi_offline
from fastapi import APIRouter, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel

from loraner import __version__
from loraner.serve.deps import Admitted, MetricsDep, ServiceDep, one_text, text_batch
from loraner.serve.errors import ERRORS
from loraner.serve.schemas import (
    AdapterOut,
    AdaptersResponse,
    BatchItem,
    BatchRequest,
    BatchResponse,
    ErrorResponse,
    HealthResponse,
    InfoResponse,
    LimitsOut,
    ModelInfoOut,
    PredictRequest,
    PredictResponse,
    entities_out,
)
from loraner.serve.service import Service
from loraner.types import Entity

STATIC_DIR = Path(__file__).parent / "static"
# The demo page loads only its own files; it never needs inline script or another origin.
DEMO_CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
OPENAPI_URL = "/openapi.json"
SWAGGER_STATIC = "/docs-static"

Result = TypeVar("Result")


@dataclass(frozen=True)
class Endpoint:
    """One route of a ``TextEndpoints`` pair: the body it takes, the answer it gives, its summary."""

    body: type[BaseModel]
    answer: type[BaseModel]
    summary: str


@dataclass(frozen=True)
class TextEndpoints(Generic[Result]):
    """An operation on texts as ``POST /{name}`` (``one``: one text) and ``POST /{name}/batch``
    (``batch``: several, answered in order), tagged ``name``.

    The same for every operation: admission (``deps.one_text``/``text_batch``: limits, adapters,
    deadline), the entity count in the access log, and the answers' envelope (``model``; a batch's
    ``results`` and ``count``). The operation's own: its bodies and answers, how it runs (``run_one``,
    ``run_batch``), and one result's fields in an answer (``fields``, ``count`` among them; a batch
    answers each text as an ``item``)."""

    name: str
    one: Endpoint
    batch: Endpoint
    item: type[BaseModel]
    run_one: Callable[[Service, Admitted[Any]], Awaitable[Result]]
    run_batch: Callable[[Service, Admitted[Any]], Awaitable[list[Result]]]
    fields: Callable[[Result], dict[str, Any]]
    exclude_none: bool = False

    def router(self) -> APIRouter:
        router = APIRouter(tags=[self.name])

        async def one(
            job: Annotated[Admitted[Any], one_text(self.one.body)], request: Request, service: ServiceDep
        ) -> Any:
            fields = self.fields(await self.run_one(service, job))
            request.state.entities = fields["count"]
            return self.one.answer(**fields, model=service.model_name)

        async def batch(
            job: Annotated[Admitted[Any], text_batch(self.batch.body)], request: Request, service: ServiceDep
        ) -> Any:
            items = [self.item(**self.fields(r)) for r in await self.run_batch(service, job)]
            request.state.entities = sum(item.count for item in items)  # type: ignore[attr-defined]
            return self.batch.answer(results=items, count=len(items), model=service.model_name)

        for path, name, handler, endpoint in (
            (f"/{self.name}", self.name, one, self.one),
            (f"/{self.name}/batch", f"{self.name}_batch", batch, self.batch),
        ):
            router.add_api_route(
                path,
                handler,
                name=name,  # the stem of the operation id, as a handler of that name would give it
                methods=["POST"],
                response_model=endpoint.answer,
                response_model_exclude_none=self.exclude_none,
                responses=ERRORS,
                summary=endpoint.summary,
            )
        return router


# --------------------------------------------------------------------------- router factories


def probes_router(_: Service) -> APIRouter:
    """``/health`` and ``/ready``, for load balancers and orchestrators."""
    router = APIRouter(tags=["info"])

    @router.get("/health", response_model=HealthResponse, summary="Liveness")
    async def health(service: ServiceDep) -> Response:
        # Alive even while loading; a model that failed to load is reported so the container restarts.
        status = "failed" if service.load_error else "ok"
        body = HealthResponse(status=status, ready=service.ready).model_dump()
        return JSONResponse(body, status_code=503 if service.load_error else 200)

    @router.get(
        "/ready",
        response_model=HealthResponse,
        summary="Readiness",
        responses={503: {"model": ErrorResponse, "description": "Model not loaded (yet)"}},
    )
    async def ready(service: ServiceDep) -> Response:
        if not service.ready:
            return JSONResponse(
                {"status": "loading" if not service.load_error else "failed", "ready": False},
                status_code=503,
            )
        return JSONResponse({"status": "ok", "ready": True})

    return router


def info_router(_: Service) -> APIRouter:
    """``GET /``: the service, its model, its limits and the modes the demo page can offer."""
    router = APIRouter(tags=["info"])

    @router.get("/", response_model=InfoResponse, summary="Service and model information")
    async def info(request: Request, service: ServiceDep) -> InfoResponse:
        s = service.settings
        model = service.info()
        return InfoResponse(
            service="loraner",
            version=__version__,
            ready=service.ready,
            model=ModelInfoOut(**model) if model else None,
            limits=LimitsOut(
                max_text_chars=s.max_text_chars,
                max_batch=s.max_batch,
                max_body_bytes=s.max_body_bytes,
                max_request_chars=s.max_request_chars,
                request_timeout_s=s.request_timeout_s,
            ),
            features=list(request.app.state.features),
        )

    return router


def _entity_fields(entities: list[Entity]) -> dict[str, Any]:
    return {"entities": entities_out(entities), "count": len(entities)}


async def _predict_one(service: Service, job: Admitted[Any]) -> list[Entity]:
    # One text goes through the micro-batcher when it is on.
    return await service.run_one(job.texts[0], job.adapters[0], work=job.work)


async def _predict_batch(service: Service, job: Admitted[Any]) -> list[list[Entity]]:
    return await service.run_batch(job.texts, work=job.work, adapters=job.adapters)


def predict_router(_: Service) -> APIRouter:
    """``POST /predict`` and ``POST /predict/batch``: entities with character offsets."""
    return TextEndpoints(
        name="predict",
        one=Endpoint(PredictRequest, PredictResponse, "Entities in one text"),
        batch=Endpoint(BatchRequest, BatchResponse, "Entities in several texts, answered in order"),
        item=BatchItem,
        run_one=_predict_one,
        run_batch=_predict_batch,
        fields=_entity_fields,
    ).router()


def adapters_router(_: Service) -> APIRouter:
    """``GET /adapters``: the LoRA adapters served (none for a single model)."""
    router = APIRouter(tags=["info"])

    @router.get("/adapters", response_model=AdaptersResponse, summary="The LoRA adapters this service serves")
    async def adapters(service: ServiceDep) -> AdaptersResponse:
        service.require_predictor()
        default = getattr(service.predictor, "default", None)
        return AdaptersResponse(adapters=[AdapterOut(**a) for a in service.adapters_info()], default=default)

    return router


def metrics_router(_: Service) -> APIRouter:
    """``GET /metrics``: Prometheus metrics (not in the OpenAPI schema)."""
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    async def metrics(collected: MetricsDep) -> Response:
        return Response(collected.render(), media_type=collected.content_type)

    return router


def demo_router(_: Service) -> APIRouter:
    """``GET /demo``: the demo page (its scripts and styles are under ``/static``, mounted by the app)."""
    router = APIRouter()

    @router.get("/demo", include_in_schema=False)
    async def demo() -> Response:
        return FileResponse(
            STATIC_DIR / "demo.html",
            media_type="text/html",
            headers={"Content-Security-Policy": DEMO_CSP, "Cache-Control": "no-cache"},
        )

    return router


def docs_router(_: Service) -> APIRouter:
    """``/openapi.json`` and ``/docs``: Swagger UI from the ``fastapi-offline`` package's files
    (``swagger_assets()``, mounted by the app at ``SWAGGER_STATIC``), so the page works offline and
    loads nothing from another origin. With API keys its "Authorize" button takes one."""
    router = APIRouter()

    @router.get(OPENAPI_URL, include_in_schema=False)
    async def openapi(request: Request) -> JSONResponse:
        return JSONResponse(request.app.openapi())

    @router.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> Any:
        return get_swagger_ui_html(
            openapi_url=OPENAPI_URL,
            title=f"{request.app.title} - docs",
            swagger_js_url=f"{SWAGGER_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER_STATIC}/favicon.png",
        )

    return router


def swagger_assets() -> Path:
    """Swagger UI's files, as the ``fastapi-offline`` package installs them."""
    return Path(fastapi_offline.__file__).parent / "static"
