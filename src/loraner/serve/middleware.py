"""One pure-ASGI middleware for what every request needs: a request id, a body-size limit (413),
an opaque 500 for unexpected errors, metrics and one structured access-log line.

Pure ASGI rather than ``BaseHTTPMiddleware``: it can read the body with a byte limit before FastAPI
does, and it catches errors without Starlette's error middleware logging the exception message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import threading
import time
import uuid
from functools import partial
from typing import Any

import anyio

from loraner.serve.logs import safe_traceback
from loraner.serve.metrics import Metrics

log = logging.getLogger("loraner.serve.access")
error_log = logging.getLogger("loraner.serve.error")

REQUEST_ID_HEADER = "x-request-id"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

Scope = dict[str, Any]


class BodyTooLarge(Exception):
    pass


class BodyTimeout(Exception):
    pass


class RequestContextMiddleware:
    def __init__(
        self, app: Any, *, max_body_bytes: int, metrics: Metrics, body_timeout_s: float = 10.0
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["arrived"] = time.monotonic()  # the request's deadline counts from here
        state["stop"] = threading.Event()  # set when the client disconnects: its inference stops
        started = time.perf_counter()
        response = {"status": 500, "started": False}

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                response["status"] = message["status"]
                response["started"] = True
                headers = [
                    h for h in message.get("headers", []) if h[0].lower() != REQUEST_ID_HEADER.encode()
                ]
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        watcher: asyncio.Task[None] | None = None
        try:
            try:
                with anyio.fail_after(self.body_timeout_s):
                    body_receive = await self._limited_body(scope, receive)
            except TimeoutError:
                raise BodyTimeout from None
            if body_receive is not receive:  # the body is buffered: the transport's receive is free
                stop = state["stop"]
                watcher = _watch_disconnect(receive, stop)
                body_receive = _replay(list(body_receive.messages), partial(_after_stop, stop, watcher))
            await self.app(scope, body_receive, send_with_id)
        except (BodyTooLarge, BodyTimeout) as exc:
            # The rest of the body is never read: close the connection rather than keep it half-read.
            if isinstance(exc, BodyTooLarge):
                status, detail = 413, f"request body is larger than the {self.max_body_bytes}-byte limit"
            else:
                status, detail = 408, f"the request body did not arrive within {self.body_timeout_s:g} s"
            if not response["started"]:
                await _send_json(
                    send_with_id, status, {"detail": detail, "request_id": request_id}, close=True
                )
        except asyncio.CancelledError:
            # The server cancels requests still running when the shutdown grace period ends: answer
            # a retryable JSON 503 rather than letting the server write a plain-text 500.
            if not response["started"]:
                with contextlib.suppress(Exception):
                    await _send_json(
                        send_with_id,
                        503,
                        {"detail": "the server is shutting down; retry", "request_id": request_id},
                        close=True,
                        retry_after=2,
                    )
            raise
        except Exception as exc:
            error_log.error(
                "unhandled error",
                extra={
                    "event": "error",
                    "request_id": request_id,
                    "path": scope.get("path", ""),
                    "error_type": type(exc).__qualname__,
                    "traceback": safe_traceback(exc),
                },
            )
            if not response["started"]:
                await _send_json(
                    send_with_id, 500, {"detail": "internal server error", "request_id": request_id}
                )
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await watcher
            self._record(scope, state, int(response["status"]), time.perf_counter() - started)

    async def _limited_body(self, scope: Scope, receive: Any) -> Any:
        """Read the whole body up to the limit (early 413 from Content-Length), then replay it."""
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            raise BodyTooLarge
        if scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            return receive
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return _replay([message], _disconnected)
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_body_bytes:
                raise BodyTooLarge
            chunks.append(body)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        _declare_json(scope, body)
        return _replay([{"type": "http.request", "body": body, "more_body": False}], receive)

    def _record(self, scope: Scope, state: dict[str, Any], status: int, seconds: float) -> None:
        path = _route_path(scope)
        self.metrics.observe_request(scope.get("method", ""), path, status, seconds)
        fields = {
            "event": "request",
            "method": scope.get("method", ""),
            "path": path,
            "status": status,
            "latency_ms": round(seconds * 1000, 2),
            "request_id": state.get("request_id"),
        }
        # Sizes only: the text itself must never be logged.
        for key in ("text_chars", "texts", "entities"):
            if key in state:
                fields[key] = state[key]
        log.info("request", extra=fields)


def _watch_disconnect(receive: Any, stop: threading.Event) -> asyncio.Task[None]:
    """Once the whole body is read, the server's next message is ``http.disconnect`` (sent when the
    client goes away, or after the response): a task waits for it and sets ``stop``, which inference
    checks between forward passes, so work whose client has gone stops."""

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        stop.set()

    return asyncio.get_running_loop().create_task(watch())


async def _after_stop(stop: threading.Event, watcher: asyncio.Task[None]) -> dict[str, Any]:
    """``receive`` for the app after its body: ``http.disconnect`` once the watcher has seen it."""
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.shield(watcher)
    return {"type": "http.disconnect"}


class _replay:
    """A ``receive`` that hands out buffered messages, then defers to ``then`` (disconnect events)."""

    def __init__(self, messages: list[dict[str, Any]], then: Any = None) -> None:
        self.messages = list(messages)
        self._queue = list(messages)
        self._then = then

    async def __call__(self) -> dict[str, Any]:
        if self._queue:
            return self._queue.pop(0)
        if self._then is not None:
            return await self._then()
        return {"type": "http.disconnect"}


async def _disconnected() -> dict[str, Any]:
    return {"type": "http.disconnect"}


FORM_TYPES = ("", "application/x-www-form-urlencoded")


def _declare_json(scope: Scope, body: bytes) -> None:
    """A JSON body sent as a form (``curl -d '{...}'`` without ``-H``) or with no type is read as JSON.

    Every endpoint takes JSON only; without this the plain ``curl -d`` answer would be a 422. A body
    that is not JSON keeps its type and gets the usual "must be a JSON object" error.
    """
    content_type = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
    if content_type not in FORM_TYPES or not body.strip():
        return
    try:
        json.loads(body)
    except ValueError:
        return
    headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"content-type"]
    scope["headers"] = [*headers, (b"content-type", b"application/json")]


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _request_id(scope: Scope) -> str:
    """The caller's X-Request-ID when it is a sane token (so traces join up), else a fresh one."""
    incoming = _header(scope, REQUEST_ID_HEADER.encode())
    if incoming and _VALID_REQUEST_ID.match(incoming):
        return incoming
    return uuid.uuid4().hex


def _route_path(scope: Scope) -> str:
    """The route template (bounded metric labels), not the raw path."""
    route = scope.get("route")
    if route is not None and getattr(route, "path", None):
        return str(route.path)
    path = str(scope.get("path", ""))
    return "/static" if path.startswith("/static/") else "unmatched"


async def _send_json(
    send: Any, status: int, payload: dict[str, Any], *, close: bool = False, retry_after: int | None = None
) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
