"""App factory and server entry point.

``create_app(settings, predictor_factory)`` builds the FastAPI app without loading anything; the
lifespan starts loading the model in a worker thread, so the server answers ``/health`` at once and
``/ready`` turns 200 when the model is in memory. Tests pass a fake ``predictor_factory``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from loraner import __version__
from loraner.errors import LoranerError, ModelError
from loraner.inference.adapters import UnknownAdapter, adapter_dirs
from loraner.inference.backends import limit_malloc_arenas
from loraner.serve.auth import UNAUTHORIZED, load_api_keys, require_key
from loraner.serve.logs import configure_logging
from loraner.serve.metrics import Metrics
from loraner.serve.middleware import REQUEST_ID_HEADER, RequestContextMiddleware
from loraner.serve.routes import STATIC_DIR, ApiError, metrics_router, pages_router, probes, router
from loraner.serve.service import (
    ClientGone,
    NotReady,
    PredictorFactory,
    Service,
    Unavailable,
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
    _install_error_handlers(app)
    _include_routes(app, settings, keys, routers)
    _declare_limits(app, settings)
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


MAX_KEY_CHARS = 256  # de-identification's document keys (loraner.serve.deid)
NOT_BLANK = r"\S"  # what the text validators enforce: at least one non-whitespace character


def configured_adapters(settings: ServeSettings) -> list[str]:
    """Adapter names the settings configure (the folder's sub-folders and NAME=PATH), without loading."""
    if not settings.base:
        return []
    names = list(adapter_dirs(settings.adapters)) if settings.adapters else []
    return list(dict.fromkeys([*names, *settings.adapter_sources()]))


def _declare_limits(app: FastAPI, settings: ServeSettings) -> None:
    """The OpenAPI schema states what validation enforces with this configuration: texts are non-blank
    and at most ``max_text_chars`` long, batches hold 1 to ``max_batch`` texts (and as many document
    keys), adapter names are the configured ones. Checked in code too (routes, schemas); the per-request
    text budget is documented under 413."""
    build = app.openapi

    def text_rules() -> dict[str, Any]:
        return {"type": "string", "minLength": 1, "maxLength": settings.max_text_chars, "pattern": NOT_BLANK}

    names = configured_adapters(settings)
    # The adapters this service has (none: a single model, where only null is valid).
    adapter_rule: dict[str, Any] = (
        {"anyOf": [{"type": "string", "enum": names}, {"type": "null"}]} if names else {"type": "null"}
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        for component in schema.get("components", {}).get("schemas", {}).values():
            properties = component.get("properties", {})
            if "text" in properties and "text" in component.get("required", ()):
                properties["text"].update(text_rules())
            if "texts" in properties:
                texts = properties["texts"]
                texts.update(minItems=1, maxItems=settings.max_batch)
                texts["items"] = {**texts.get("items", {}), **text_rules()}
            is_request = "text" in properties or "texts" in properties
            if is_request and "adapter" in properties:
                properties["adapter"] = {
                    **adapter_rule,
                    "description": properties["adapter"].get("description", ""),
                }
            if is_request and "adapters" in properties:
                described = properties["adapters"].get("description", "")
                one_each = {
                    "type": "array",
                    "items": adapter_rule,
                    "minItems": 1,
                    "maxItems": settings.max_batch,
                }
                properties["adapters"] = {"anyOf": [one_each, {"type": "null"}], "description": described}
            if "document_keys" in properties:
                keys = properties["document_keys"]
                for option in keys.get("anyOf", [keys]):
                    if option.get("type") == "array":
                        option["maxItems"] = settings.max_batch
                        for item in option.get("items", {}).get("anyOf", []):
                            if item.get("type") == "string":
                                item["maxLength"] = MAX_KEY_CHARS
        return schema

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


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def _error(request: Request, status: int, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": detail, "request_id": _request_id(request), **extra}, status_code=status)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [_public_error(e) for e in exc.errors()]
        return _error(
            request, 422, "; ".join(_describe(e) for e in errors) or "invalid request", errors=errors
        )

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(request, exc.status, exc.detail)

    @app.exception_handler(NotReady)
    async def not_ready(request: Request, exc: NotReady) -> JSONResponse:
        response = _error(request, 503, f"model is not ready: {exc}")
        response.headers["Retry-After"] = "5"
        return response

    @app.exception_handler(UnknownAdapter)
    async def unknown_adapter(request: Request, exc: UnknownAdapter) -> JSONResponse:
        return _error(request, 404, str(exc), available=exc.available)

    @app.exception_handler(Unavailable)
    async def unavailable(request: Request, exc: Unavailable) -> JSONResponse:
        response = _error(request, 503, exc.detail)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.exception_handler(ClientGone)
    async def client_gone(request: Request, exc: ClientGone) -> JSONResponse:
        # Nobody reads this answer; 499 (nginx's "client closed request") marks it in logs and metrics.
        return _error(request, 499, "the client closed the connection; its work was stopped")

    @app.exception_handler(ModelError)
    async def model_error(request: Request, exc: ModelError) -> JSONResponse:
        # The model, not the request, is at fault: a server error (its message may quote no text).
        log.error("model error", extra={"event": "model_error", "request_id": _request_id(request)})
        return _error(request, 500, "the model failed on this request; quote the request_id")

    @app.exception_handler(LoranerError)
    async def domain_error(request: Request, exc: LoranerError) -> JSONResponse:
        return _error(request, 400, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and "parsing the body" in str(exc.detail):
            # FastAPI's answer to a body that is not UTF-8 JSON: a validation error like any bad JSON.
            return _error(request, 422, "the body is not valid JSON (UTF-8 expected)")
        response = _error(request, exc.status_code, str(exc.detail))
        for name, value in (exc.headers or {}).items():  # e.g. Allow on a 405
            response.headers[name] = value
        return response


def _public_error(error: dict[str, Any]) -> dict[str, Any]:
    """A pydantic error without ``input`` (it would echo the whole text back) or unserialisable ctx."""
    return {
        "loc": [str(p) for p in error.get("loc", ())],
        "msg": str(error.get("msg", "")),
        "type": error.get("type"),
    }


def _describe(error: dict[str, Any]) -> str:
    loc = [p for p in error["loc"] if p != "body"]
    if error["type"] == "json_invalid":
        return "the body is not valid JSON"
    if error["type"] == "missing" and not loc:
        return "a JSON body is required"
    if error["type"] == "model_attributes_type" or (error["type"] == "dict_type" and not loc):
        return "the body must be a JSON object (sent with Content-Type: application/json)"
    msg = error["msg"].removeprefix("Value error, ")
    return f"{'.'.join(loc)}: {msg}" if loc else msg


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
    import uvicorn

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
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,  # keep the JSON handlers configured above
        access_log=False,  # the middleware writes one structured line per request instead
        server_header=False,
        # Bounded connections: idle keep-alive closes, at most max_connections open (more get 503),
        # request heads at most 64 KiB; bodies are bounded by the middleware (size and time).
        timeout_keep_alive=settings.keep_alive_s,
        limit_concurrency=settings.max_connections,
        h11_max_incomplete_event_size=64 * 1024,
        # Uvicorn cancels what is left a moment after the service has stopped it (see GracefulServer).
        timeout_graceful_shutdown=settings.shutdown_grace_s + 1,
    )
    GracefulServer(config, app.state.service, settings.shutdown_grace_s).run()


class GracefulServer(uvicorn.Server):
    """Uvicorn's server, telling the service it is shutting down (503 for new requests, work in flight
    stopped when the grace period ends), and exiting 0 after a graceful stop on SIGTERM."""

    def __init__(self, config: uvicorn.Config, service: Service, grace_s: float) -> None:
        super().__init__(config)
        self.service = service
        self.grace_s = grace_s

    async def shutdown(self, sockets: Any = None) -> None:
        self.service.begin_shutdown()
        timer = asyncio.get_running_loop().call_later(self.grace_s, self.service.abort_work)
        try:
            await super().shutdown(sockets)
        finally:
            timer.cancel()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            # Uvicorn re-raises the signal after shutting down (exit 143 on SIGTERM); a graceful stop
            # is a clean exit.
            self._captured_signals[:] = [s for s in self._captured_signals if s != signal.SIGTERM]
