"""The service's state: the predictor (loaded once, in the background, at start-up), its readiness,
and how inference runs: in worker threads, at most ``concurrency`` at once, optionally micro-batched."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Protocol

import anyio

from loraner.errors import LoranerError
from loraner.inference.adapters import UnknownAdapter
from loraner.inference.predictor import ModelInfo
from loraner.serve.batcher import MicroBatcher
from loraner.serve.logs import safe_traceback
from loraner.serve.metrics import Metrics
from loraner.serve.settings import ServeSettings
from loraner.types import Entity

log = logging.getLogger("loraner.serve")


class Predictor(Protocol):
    """What the service needs from a model: a batch function and something to show in ``GET /``."""

    @property
    def info(self) -> ModelInfo: ...

    def predict_batch(
        self, texts: Sequence[str], *, o_threshold: float | None = None
    ) -> list[list[Entity]]: ...


PredictorFactory = Callable[[ServeSettings], Predictor]


def default_predictor_factory(settings: ServeSettings) -> Predictor:
    from loraner.inference import NERPredictor

    decoding = {
        "batch_size": settings.batch_size,
        "max_batch_tokens": settings.max_batch_tokens,
        "aggregation": settings.aggregation,
        "o_threshold": settings.o_threshold,
    }
    if settings.base:
        # A [train]-side module (PEFT): imported only when adapters are served.
        from loraner.inference.adapters import MultiAdapterPredictor, adapter_dirs

        sources: dict[str, Any] = adapter_dirs(settings.adapters) if settings.adapters else {}
        sources.update(settings.adapter_sources())
        return MultiAdapterPredictor.from_pretrained(
            settings.base,
            sources,
            default=settings.default_adapter,
            device=settings.device,
            dtype=settings.dtype,
            threads=settings.threads,
            max_loaded=settings.max_loaded_adapters,
            **decoding,
        )
    if not settings.model:
        raise LoranerError("no model: set LORANER_MODEL or pass --model (or --base with adapters)")
    return NERPredictor.from_pretrained(
        settings.model,
        backend=settings.backend,
        device=settings.device,
        threads=settings.threads,
        max_length=settings.max_length,
        stride=settings.stride,
        word_split=settings.word_split,
        dtype=settings.dtype,
        **decoding,
    )


class NotReady(Exception):
    pass


class Service:
    def __init__(self, settings: ServeSettings, factory: PredictorFactory, metrics: Metrics) -> None:
        self.settings = settings
        self.factory = factory
        self.metrics = metrics
        self.predictor: Predictor | None = None
        self.load_error: str | None = None
        self.limiter: anyio.CapacityLimiter | None = None
        self.batcher: MicroBatcher | None = None

    @property
    def ready(self) -> bool:
        return self.predictor is not None

    @property
    def model_name(self) -> str:
        if self.settings.model_name:
            return self.settings.model_name
        return self.predictor.info.name if self.predictor is not None else ""

    async def start(self) -> None:
        """Called from the lifespan; the limiter and batcher must be created inside the event loop."""
        self.limiter = anyio.CapacityLimiter(self.settings.concurrency)
        if self.settings.microbatch_ms > 0:
            self.batcher = MicroBatcher(
                self._run_micro_batch, self.settings.microbatch_ms / 1000, self.settings.microbatch_max
            )

    async def load(self) -> None:
        started = time.perf_counter()
        try:
            predictor = await anyio.to_thread.run_sync(self.factory, self.settings, abandon_on_cancel=True)
        except Exception as exc:
            # Clients see a LoranerError's message (it names the file and the fix), else the type only;
            # the log gets the full message: loading involves no request text.
            self.load_error = str(exc) if isinstance(exc, LoranerError) else type(exc).__qualname__
            log.error(
                "model failed to load",
                extra={
                    "event": "load_failed",
                    "error": f"{type(exc).__qualname__}: {exc}",
                    "traceback": safe_traceback(exc),
                },
            )
            return
        self.predictor = predictor
        self.metrics.ready.set(1)
        info = predictor.info
        log.info(
            "model loaded",
            extra={
                "event": "model_loaded",
                "model": info.name,
                "backend": info.backend,
                "seconds": round(time.perf_counter() - started, 2),
            },
        )

    async def stop(self) -> None:
        if self.batcher is not None:
            await self.batcher.aclose()

    def require_predictor(self) -> Predictor:
        if self.predictor is None:
            raise NotReady(self.load_error or "model is loading")
        return self.predictor

    @property
    def adapter_names(self) -> list[str]:
        """The adapters this service serves (empty: one model, no adapters)."""
        return list(getattr(self.predictor, "names", []))

    def check_adapters(self, names: Sequence[str | None]) -> list[str | None]:
        """Requests name adapters, never paths: every name must be one of the configured ones (checked
        before any work, so a bad name never fails the micro-batch it would have shared)."""
        predictor = self.require_predictor()
        available = self.adapter_names
        default = getattr(predictor, "default", None)
        for name in dict.fromkeys(names):
            if name is None and (default is not None or not available):
                continue
            if name is None or name not in available:
                raise UnknownAdapter(name, available)
        resolved = [default if name is None else name for name in names]
        for name in resolved:
            if name is not None:
                self.metrics.adapter_requests.labels(name).inc()
        return resolved

    async def run_batch(
        self,
        texts: list[str],
        *,
        o_threshold: float | None = None,
        adapters: Sequence[str | None] | None = None,
    ) -> list[list[Entity]]:
        """``predict_batch`` in a worker thread: the event loop keeps serving while the model runs.

        ``o_threshold``: this call's cut-off instead of the predictor's own (de-identification's).
        ``adapters``: one name per text (checked by :meth:`check_adapters`), for a multi-adapter model."""
        predictor = self.require_predictor()
        started = time.perf_counter()
        if self.adapter_names:
            work = partial(predictor.predict_batch, texts, adapters, o_threshold=o_threshold)
        else:
            work = partial(predictor.predict_batch, texts, o_threshold=o_threshold)
        results = await anyio.to_thread.run_sync(work, limiter=self.limiter)
        self.metrics.observe_inference(results, len(texts), time.perf_counter() - started)
        return results

    async def _run_micro_batch(self, texts: list[str], adapters: list[str | None]) -> list[list[Entity]]:
        return await self.run_batch(texts, adapters=adapters)

    async def run_one(self, text: str, adapter: str | None = None) -> list[Entity]:
        self.require_predictor()
        if self.batcher is not None:
            return await self.batcher.submit(text, adapter)
        return (await self.run_batch([text], adapters=[adapter]))[0]

    def adapters_info(self) -> list[dict[str, Any]]:
        info = getattr(self.predictor, "adapter_info", None)
        return [a.to_dict() for a in info()] if info is not None else []

    def info(self) -> dict[str, Any] | None:
        if self.predictor is None:
            return None
        data = self.predictor.info.to_dict()
        data["name"] = self.model_name
        return data
