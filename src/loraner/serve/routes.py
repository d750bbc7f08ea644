"""HTTP routes. Handlers stay thin: check the settings-dependent limits, then ask the service.

The routes come in groups that ``create_app`` guards differently when API keys are configured
(``loraner.serve.auth``): ``probes`` (always open), ``router`` (the API: always needs a key),
``metrics_router`` (``protect_metrics``) and ``pages_router`` (``protect_demo``).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import FileResponse, JSONResponse

from loraner import __version__
from loraner.serve.errors import ERRORS, ApiError
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
from loraner.serve.service import Service, Work

STATIC_DIR = Path(__file__).parent / "static"
# The demo page loads only its own files; it never needs inline script or another origin.
DEMO_CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)

probes = APIRouter()
router = APIRouter()
metrics_router = APIRouter()
pages_router = APIRouter()


def get_service(request: Request) -> Service:
    return request.app.state.service


@router.get("/", response_model=InfoResponse, tags=["info"], summary="Service and model information")
async def info(request: Request, service: Service = Depends(get_service)) -> InfoResponse:
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


@probes.get("/health", response_model=HealthResponse, tags=["info"], summary="Liveness")
async def health(service: Service = Depends(get_service)) -> Response:
    # Alive even while loading; a model that failed to load is reported so the container restarts.
    status = "failed" if service.load_error else "ok"
    body = HealthResponse(status=status, ready=service.ready).model_dump()
    return JSONResponse(body, status_code=503 if service.load_error else 200)


@probes.get(
    "/ready",
    response_model=HealthResponse,
    tags=["info"],
    summary="Readiness",
    responses={503: {"model": ErrorResponse, "description": "Model not loaded (yet)"}},
)
async def ready(service: Service = Depends(get_service)) -> Response:
    if not service.ready:
        return JSONResponse(
            {"status": "loading" if not service.load_error else "failed", "ready": False}, status_code=503
        )
    return JSONResponse({"status": "ok", "ready": True})


def admit_text(request: Request, service: Service, text: str) -> Work:
    """The service's length limits for one text; request size noted for the access log (never the text).
    Returns the request's claim on the model (deadline, and the stop flag set if the client leaves)."""
    _check_length(text, service.settings.max_text_chars, "text")
    request.state.text_chars = len(text)
    _check_budget(len(text), service.settings.max_request_chars)
    return work_for(request, service)


def admit_texts(request: Request, service: Service, texts: list[str]) -> Work:
    """Count and length limits for a batch; its size noted for the access log."""
    limit = service.settings.max_batch
    if len(texts) > limit:
        raise ApiError(422, f"texts has {len(texts)} items; the limit is {limit}")
    for i, text in enumerate(texts):
        _check_length(text, service.settings.max_text_chars, f"texts[{i}]")
    request.state.texts = len(texts)
    request.state.text_chars = sum(len(t) for t in texts)
    _check_budget(request.state.text_chars, service.settings.max_request_chars)
    return work_for(request, service)


def work_for(request: Request, service: Service) -> Work:
    """The request's deadline (from its arrival) and the stop flag the middleware sets on disconnect."""
    stop = getattr(request.state, "stop", None)
    arrived = getattr(request.state, "arrived", None)
    work = service.new_work(stop)
    if arrived is not None:
        work.deadline = arrived + service.settings.request_timeout_s
    return work


def _check_budget(chars: int, limit: int) -> None:
    if chars > limit:
        raise ApiError(
            413,
            f"the request has {chars} characters of text; the limit is {limit} per request "
            "(LORANER_MAX_REQUEST_CHARS): send fewer or shorter texts",
        )


@router.post(
    "/predict",
    response_model=PredictResponse,
    tags=["predict"],
    responses=ERRORS,
    summary="Entities in one text",
)
async def predict(
    body: PredictRequest, request: Request, service: Service = Depends(get_service)
) -> PredictResponse:
    work = admit_text(request, service, body.text)
    [adapter] = service.check_adapters([body.adapter])
    entities = await service.run_one(body.text, adapter, work=work)
    request.state.entities = len(entities)
    return PredictResponse(entities=entities_out(entities), count=len(entities), model=service.model_name)


@router.post(
    "/predict/batch",
    response_model=BatchResponse,
    tags=["predict"],
    responses=ERRORS,
    summary="Entities in several texts, answered in order",
)
async def predict_batch(
    body: BatchRequest, request: Request, service: Service = Depends(get_service)
) -> BatchResponse:
    work = admit_texts(request, service, body.texts)
    adapters = service.check_adapters(body.adapter_per_text())
    results = await service.run_batch(list(body.texts), work=work, adapters=adapters)
    request.state.entities = sum(len(r) for r in results)
    items = [BatchItem(entities=entities_out(r), count=len(r)) for r in results]
    return BatchResponse(results=items, count=len(items), model=service.model_name)


@router.get(
    "/adapters",
    response_model=AdaptersResponse,
    tags=["info"],
    summary="The LoRA adapters this service serves",
)
async def adapters(service: Service = Depends(get_service)) -> AdaptersResponse:
    service.require_predictor()
    default = getattr(service.predictor, "default", None)
    return AdaptersResponse(adapters=[AdapterOut(**a) for a in service.adapters_info()], default=default)


@metrics_router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    m = request.app.state.metrics
    return Response(m.render(), media_type=m.content_type)


@pages_router.get("/demo", include_in_schema=False)
async def demo() -> Response:
    return FileResponse(
        STATIC_DIR / "demo.html",
        media_type="text/html",
        headers={"Content-Security-Policy": DEMO_CSP, "Cache-Control": "no-cache"},
    )


def _check_length(text: str, limit: int, field: str) -> None:
    if len(text) > limit:
        raise ApiError(422, f"{field} has {len(text)} characters; the limit is {limit}")
