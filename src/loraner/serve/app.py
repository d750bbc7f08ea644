"""The app factory, ``create_app(settings, predictor_factory)``, and ``run_server``.

``create_app`` builds the FastAPI app without loading anything: the lifespan starts loading the model in
a worker thread, so the server answers ``/health`` at once and ``/ready`` turns 200 when the model is in
memory. Tests pass a fake ``predictor_factory``. ``FEATURES`` lists every route group the app serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from loraner import __version__
from loraner.inference.adapters import adapter_dirs
from loraner.inference.backends import limit_malloc_arenas
from loraner.serve.auth import UNAUTHORIZED, load_api_keys, require_key
from loraner.serve.errors import install_error_handlers
from loraner.serve.labelstudio import label_studio_router
from loraner.serve.logs import configure_logging
from loraner.serve.metrics import Metrics
from loraner.serve.middleware import REQUEST_ID_HEADER, RequestContextMiddleware
from loraner.serve.routes import (
    STATIC_DIR,
    SWAGGER_STATIC,
    adapters_router,
    demo_router,
    docs_router,
    info_router,
    metrics_router,
    predict_router,
    probes_router,
    swagger_assets,
)
from loraner.serve.schemas import Limits, stating
from loraner.serve.server import serve
from loraner.serve.service import PredictorFactory, Service, default_predictor_factory
from loraner.serve.settings import ServeSettings

log = logging.getLogger("loraner.serve")

DESCRIPTION = """Named-entity recognition over HTTP. Offsets are character offsets into the text sent,
and every entity's `text` equals `text[start:end]`. A demo page is at [/demo](/demo)."""


def _deidentify_router(service: Service) -> APIRouter | None:
    """De-identification, unless ``LORANER_DEID=false`` or its layer is not installed."""
    if not service.settings.deid:
        return None
    try:
        from loraner.serve.deid import deid_router
    except ImportError:  # an install without loraner.deid: serve NER only
        return None
    return deid_router(service)


@dataclass(frozen=True)
class Feature:
    """A route group: its router factory (None: not served with these settings), whether it needs an
    API key when keys are configured, the modes it adds to ``GET /``'s ``features`` (the demo
    page's mode switch), and whether a key may come as an HTTP Basic password (Label Studio sends an ML
    backend's credentials so)."""

    routes: Callable[[Service], APIRouter | None]
    needs_key: Callable[[ServeSettings], bool]
    modes: tuple[str, ...] = ()
    basic_auth: bool = False


def _always(_: ServeSettings) -> bool:
    return True


def _never(_: ServeSettings) -> bool:
    return False


# Every route group, in the order of the OpenAPI schema. The probes never need a key (a load balancer
# or orchestrator sends none); /metrics and the pages people open in a browser need one as configured.
FEATURES = (
    Feature(probes_router, _never),
    Feature(info_router, _always),
    Feature(predict_router, _always, modes=("predict", "predict_batch")),
    Feature(adapters_router, _always),
    Feature(_deidentify_router, _always, modes=("deidentify",)),
    Feature(label_studio_router, _always, basic_auth=True),
    Feature(metrics_router, attrgetter("protect_metrics")),
    Feature(demo_router, attrgetter("protect_demo")),
    Feature(docs_router, attrgetter("protect_demo")),
)


def create_app(
    settings: ServeSettings | None = None,
    predictor_factory: PredictorFactory | None = None,
    *,
    routers: Sequence[APIRouter] = (),
    features: Sequence[str] = (),
) -> FastAPI:
    """The service. ``routers``/``features`` let other modes plug in: their routes are served after
    the built-in ones (with the API's key check), and their mode names follow the built-in ones in
    ``GET /``; a built-in feature whose mode is among ``features`` is left out (the caller's replaces
    it)."""
    settings = settings or ServeSettings.from_env()
    keys = load_api_keys(settings)  # a bad key or keys file fails here, before anything starts
    metrics = Metrics()
    service = Service(settings, predictor_factory or default_predictor_factory, metrics)
    metrics.watch_adapters(service.adapter_churn)

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
        docs_url=None,  # /docs from routes.docs_router: Swagger UI from the installed package, no CDN
        redoc_url=None,
        openapi_url=None,  # /openapi.json from routes.docs_router, with the pages' protection
    )
    app.state.service = service
    app.state.metrics = metrics
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
    app.state.features = _include_features(app, service, keys, routers, features)
    _state_limits(app, settings)
    # The pages' own files (scripts, styles, Swagger UI's) carry no data: open, whatever protect_demo says.
    app.mount(SWAGGER_STATIC, StaticFiles(directory=swagger_assets()), name="docs-static")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _include_features(
    app: FastAPI,
    service: Service,
    keys: tuple[bytes, ...],
    routers: Sequence[APIRouter],
    features: Sequence[str],
) -> list[str]:
    """Every route group of ``FEATURES`` these settings serve, then the caller's, each guarded by an API
    key when keys are configured and the group needs one; returns the modes for ``GET /``."""
    modes: list[str] = []

    def include(group: APIRouter, needs_key: bool, basic_auth: bool = False) -> None:
        if needs_key and keys:
            app.include_router(
                group, dependencies=[require_key(keys, basic=basic_auth)], responses=UNAUTHORIZED
            )
        else:
            app.include_router(group)

    for feature in FEATURES:
        if set(feature.modes) & set(features):
            continue
        group = feature.routes(service)
        if group is not None:
            include(group, feature.needs_key(service.settings), feature.basic_auth)
            modes += feature.modes
    for group in routers:
        include(group, True)
    return [*modes, *features]


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
    limits = Limits(
        settings.max_text_chars,
        settings.max_batch,
        tuple(configured_adapters(settings)),
        settings.default_adapter,
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        with stating(limits):
            return build()

    app.openapi = openapi  # type: ignore[method-assign]


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
