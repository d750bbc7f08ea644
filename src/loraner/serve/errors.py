"""Every error the service answers, as JSON ``{"detail", "request_id", ...}``: the exception handlers
``create_app`` installs, ``ApiError`` for a handler's expected refusals, and ``ERRORS``, the error
answers the API routes declare in the OpenAPI schema.

What the middleware answers itself (413 for a large body, 408, the opaque 500) has the same shape.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from loraner.errors import LoranerError, ModelError
from loraner.inference.adapters import AdapterUnavailable, UnknownAdapter
from loraner.serve.schemas import ErrorResponse
from loraner.serve.service import AdapterRequired, ClientGone, NotReady, Unavailable

log = logging.getLogger("loraner.serve")

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "Unknown adapter (the answer lists the available ones)"},
    413: {
        "model": ErrorResponse,
        "description": "Body over LORANER_MAX_BODY_BYTES, or more text than LORANER_MAX_REQUEST_CHARS",
    },
    422: {
        "model": ErrorResponse,
        "description": "Invalid input: empty text, wrong types, over a limit, no adapter named where the "
        "service has no default adapter",
    },
    500: {"model": ErrorResponse, "description": "Unexpected error; quote the request_id"},
    503: {
        "model": ErrorResponse,
        "description": "Retryable (see Retry-After): model not loaded yet, queue full, request timed out, "
        "shutting down, or the named adapter cannot be loaded (the answer names it and the reason)",
        "headers": {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}},
    },
}


class ApiError(Exception):
    """An expected failure with a status and a message meant for the client."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def install_error_handlers(app: FastAPI) -> None:
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

    @app.exception_handler(AdapterRequired)
    async def adapter_required(request: Request, exc: AdapterRequired) -> JSONResponse:
        return _error(request, 422, str(exc), available=exc.available)

    @app.exception_handler(AdapterUnavailable)
    async def adapter_unavailable(request: Request, exc: AdapterUnavailable) -> JSONResponse:
        # The other adapters still answer; this one cannot, and the answer says why (never a 500).
        log.error(
            "adapter unavailable",
            extra={"event": "adapter_unavailable", "adapter": exc.name, "error": exc.reason},
        )
        response = _error(request, 503, exc.public, adapter=exc.name)
        response.headers["Retry-After"] = "30"
        return response

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


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def _error(request: Request, status: int, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": detail, "request_id": _request_id(request), **extra}, status_code=status)


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
