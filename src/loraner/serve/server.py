"""Uvicorn around an app: bounded connections and request heads, one structured log instead of
Uvicorn's own, and a graceful stop on SIGTERM/SIGINT (``GracefulServer``)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator
from typing import Any

import uvicorn
from fastapi import FastAPI

from loraner.serve.service import Service
from loraner.serve.settings import ServeSettings


def serve(app: FastAPI, settings: ServeSettings) -> None:
    """Run ``app`` (built by ``create_app``) until a signal stops it."""
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,  # keep the JSON handlers configure_logging set up
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
