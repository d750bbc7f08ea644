"""App factory and server entry point (the server itself: ``loraner.serve.server``).

``create_app(settings, predictor_factory)`` builds the FastAPI app without loading anything; the
lifespan starts loading the model in a worker thread, so the server answers ``/health`` at once and
``/ready`` turns 200 when the model is in memory. Tests pass a fake ``predictor_factory``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from loraner import __version__
from loraner.inference.adapters import adapter_dirs
from loraner.inference.backends import limit_malloc_arenas
from loraner.serve.auth import UNAUTHORIZED, load_api_keys, require_key
from loraner.serve.errors import install_error_handlers
from loraner.serve.logs import configure_logging
from loraner.serve.metrics import Metrics
from loraner.serve.middleware import REQUEST_ID_HEADER, RequestContextMiddleware
from loraner.serve.routes import STATIC_DIR, metrics_router, pages_router, probes, router
from loraner.serve.schemas import Limits, stating
from loraner.serve.server import serve
from loraner.serve.service import (
    PredictorFactory,
    Service,
    default_predictor_factory,
)
from loraner.serve.settings import ServeSettings

log = logging.getLogger("loraner.serve")

BASE_FEATURES = ("predict", "predict_batch")

DESCRIPTION = """Named-entity recognition over HTTP. Offsets are character offsets into the text sent,
and every entity's `text` equals `text[start:end]`. A demo page is at [/demo](/demo)."""


def create_app(
    settings: ServeSettings | None = None,
    predictor_factory: PredictorFactory | None = None,
    *,
    routers: Sequence[APIRouter] = (),
    features: Sequence[str] = (),
) -> FastAPI:
    """The service. ``routers``/``features`` let other modes plug in: their routes are mounted and their
    feature names appear in ``GET /`` for the demo page's mode switch. De-identification is added here
    unless ``settings.deid`` is off or the caller brings its own "deidentify" feature."""
    settings = settings or ServeSettings.from_env()
    keys = load_api_keys(settings)  # a bad key or keys file fails here, before anything starts
    metrics = Metrics()
    if settings.deid and "deidentify" not in features:
        routers, features = _with_deid(settings, metrics, routers, features)
    service = Service(settings, predictor_factory or default_predictor_factory, metrics)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        loader = asyncio.create_task(service.load()) if settings.load_in_background else None
        if loader is None:
            await service.load()
        try:
            yield
        finally:
            if loader is not None and not loader.done():
                loader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loader
            await service.stop()

    app = FastAPI(
        title="loraner NER service",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # /docs below: Swagger UI from the installed package, never from a CDN
        redoc_url=None,
        openapi_url=None,  # /openapi.json below, with the demo page's protection
    )
    app.state.service = service
    app.state.metrics = metrics
    app.state.features = [*BASE_FEATURES, *features]
    app.state.api_keys = len(keys)  # how many, for the start-up log; never the keys
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        metrics=metrics,
        body_timeout_s=settings.body_timeout_s,
    )
    if settings.cors_origins:
        # Added last, so outermost: its headers also go on the middleware's own 413/408/500 answers,
        # and preflights (which carry no key) are answered before the API key is asked for.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", REQUEST_ID_HEADER],
            expose_headers=[REQUEST_ID_HEADER, "Retry-After", "WWW-Authenticate"],
            max_age=600,
        )
    install_error_handlers(app)
    _include_routes(app, settings, keys, routers)
    _state_limits(app, settings)
    # The pages' own files (scripts, styles) carry no data: open, whatever protect_demo says.
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _include_routes(
    app: FastAPI, settings: ServeSettings, keys: tuple[bytes, ...], routers: Sequence[APIRouter]
) -> None:
    """Every route group, each guarded by an API key when keys are configured and its setting says so:
    the API always, /metrics with ``protect_metrics``, the pages with ``protect_demo``; the probes
    never (a load balancer or orchestrator sends no key)."""
    guard = [require_key(keys)] if keys else []

    def include(group: APIRouter, protected: bool) -> None:
        if protected and guard:
            app.include_router(group, dependencies=guard, responses=UNAUTHORIZED)
        else:
            app.include_router(group)

    include(probes, False)
    for group in (router, *routers):
        include(group, True)
    include(metrics_router, settings.protect_metrics)
    include(pages_router, settings.protect_demo)
    include(_docs_router(app), settings.protect_demo)


def configured_adapters(settings: ServeSettings) -> list[str]:
    """Adapter names the settings configure (the folder's sub-folders and NAME=PATH), without loading."""
    if not settings.base:
        return []
    names = list(adapter_dirs(settings.adapters)) if settings.adapters else []
    return list(dict.fromkeys([*names, *settings.adapter_sources()]))


def _state_limits(app: FastAPI, settings: ServeSettings) -> None:
    """The OpenAPI schema states what validation enforces with this configuration (``schemas.Limits``
    on the fields that carry them); the per-request text budget is documented under 413."""
    build = app.openapi
    limits = Limits(settings.max_text_chars, settings.max_batch, tuple(configured_adapters(settings)))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        with stating(limits):
            return build()

    app.openapi = openapi  # type: ignore[method-assign]


OPENAPI_URL = "/openapi.json"


def _docs_router(app: FastAPI) -> APIRouter:
    """``/openapi.json`` and ``/docs``: Swagger UI served from the ``fastapi-offline`` package's files,
    so the page works offline and loads nothing from another origin. With API keys its "Authorize"
    button takes one."""
    import fastapi_offline
    from fastapi.openapi.docs import get_swagger_ui_html

    assets = Path(fastapi_offline.__file__).parent / "static"
    app.mount("/docs-static", StaticFiles(directory=assets), name="docs-static")
    docs_router = APIRouter()

    @docs_router.get(OPENAPI_URL, include_in_schema=False)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @docs_router.get("/docs", include_in_schema=False)
    async def docs() -> Any:
        return get_swagger_ui_html(
            openapi_url=OPENAPI_URL,
            title=f"{app.title} - docs",
            swagger_js_url="/docs-static/swagger-ui-bundle.js",
            swagger_css_url="/docs-static/swagger-ui.css",
            swagger_favicon_url="/docs-static/favicon.png",
        )

    return docs_router


def _with_deid(
    settings: ServeSettings, metrics: Metrics, routers: Sequence[APIRouter], features: Sequence[str]
) -> tuple[list[APIRouter], list[str]]:
    """``routers``/``features`` plus de-identification, when its layer is installed."""
    try:
        from loraner.serve.deid import FEATURE, deid_router
    except ImportError:  # an install without loraner.deid: serve NER only
        return list(routers), list(features)
    return [*routers, deid_router(settings, metrics)], [*features, FEATURE]


def run_server(
    model_dir: str | Path | None = None,
    host: str | None = None,
    port: int | None = None,
    settings: ServeSettings | None = None,
    predictor_factory: PredictorFactory | None = None,
    **overrides: Any,
) -> None:
    """Serve until interrupted. Arguments override ``LORANER_*`` environment settings.

    SIGTERM/SIGINT: new requests get a retryable 503, requests in flight get ``shutdown_grace_s``, then
    their work stops and they get the same 503; the process then exits 0."""
    if settings is None:
        model = str(model_dir) if model_dir is not None else None
        settings = ServeSettings.from_env(model=model, host=host, port=port, **overrides)
    configure_logging(settings.log_level, settings.log_json)
    limit_malloc_arenas()  # before uvicorn and the model start their threads
    app = create_app(settings, predictor_factory)
    log.info(
        "starting",
        extra={
            "event": "starting",
            "host": settings.host,
            "port": settings.port,
            "backend": settings.backend,
            "model": settings.model,
            "api_keys": app.state.api_keys,
            "cors_origins": settings.cors_origins,
        },
    )
    serve(app, settings)
