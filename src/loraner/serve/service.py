"""The service's state: the predictor (loaded once, in the background, at start-up), its readiness,
and how inference runs: in worker threads, at most ``concurrency`` at once, optionally micro-batched."""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import anyio

from loraner.errors import LoranerError
from loraner.inference.adapters import AdapterUnavailable, UnknownAdapter
from loraner.inference.predictor import Cancelled, ModelInfo, ShouldStop, TextPrediction
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
        self, texts: Sequence[str], *, o_threshold: float | None = None, should_stop: ShouldStop | None = None
    ) -> list[list[Entity]]: ...


PredictorFactory = Callable[[ServeSettings], Predictor]


def default_predictor_factory(settings: ServeSettings) -> Predictor:
    from loraner.inference import NERPredictor

    if settings.base:
        # PEFT on the torch backend, ONNX Runtime on a base graph (imported by the pool that needs it).
        from loraner.inference.adapters import MultiAdapterPredictor, named_adapters

        adapters = named_adapters(settings.adapters, settings.adapter)
        return MultiAdapterPredictor.from_pretrained(settings.base, adapters, **settings.predictor_options())
    if not settings.model:
        raise LoranerError("no model: set LORANER_MODEL or pass --model (or --base with adapters)")
    predictor = NERPredictor.from_pretrained(settings.model, **settings.predictor_options())
    predictor.check()  # ready means ready: a dry run catches a tokenizer or label list that does not fit
    if settings.label_studio:
        _ = predictor.version  # its fingerprint reads the weights: here, not in a request
    return predictor


def _without_path(message: str, model: str | None) -> str:
    """A load error for clients: the model directory's path (absolute or as given) becomes "the model
    directory"; the log keeps the full message."""
    if model:
        for form in sorted({str(Path(model).resolve()), model.rstrip("/")}, key=len, reverse=True):
            # A file inside it keeps its own name ("model.onnx: ..."); "/model" in "/model.onnx" is no path.
            message = re.sub(re.escape(form) + "/", "", message)
            message = re.sub(re.escape(form) + r"(?![\w.-])", "the model directory", message)
    return message


class NotReady(Exception):
    pass


class Unavailable(Exception):
    """A retryable refusal (503 with Retry-After): the queue is full, time ran out, or shutting down."""

    def __init__(self, detail: str, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after


def _shutting_down() -> Unavailable:
    return Unavailable("the server is shutting down; retry (another instance will answer)", retry_after=2)


class AdapterRequired(Exception):
    """A request named no adapter where there is no default one (422: the schema requires the field)."""

    def __init__(self, available: Sequence[str]) -> None:
        self.available = list(available)
        super().__init__(
            f"name an adapter (adapter, or adapters for a batch): this service has no default adapter; "
            f"available: {', '.join(self.available)}"
        )


class ClientGone(Exception):
    """The client disconnected; its work was stopped between forward passes."""


@dataclass
class Work:
    """One request's claim on the model: a deadline, a stop flag (set when its client disconnects) and
    the service's abort flag (set when the shutdown grace period ends)."""

    deadline: float
    stop: threading.Event = field(default_factory=threading.Event)
    abort: threading.Event = field(default_factory=threading.Event)
    # The longest gap between two should_stop calls so far (one forward pass and its bookkeeping),
    # seeded with the service's last observed pass.
    pass_s: float = 0.0
    _last_check: float | None = None

    @classmethod
    def starting_now(
        cls,
        timeout_s: float,
        stop: threading.Event | None = None,
        abort: threading.Event | None = None,
        pass_s: float = 0.0,
    ) -> Work:
        return cls(
            time.monotonic() + timeout_s, stop or threading.Event(), abort or threading.Event(), pass_s
        )

    def should_stop(self) -> bool:
        """Asked before each forward pass. A pass that would end after the deadline is not started:
        its answer would come too late, and the wait would hold the model from requests that can still
        make theirs."""
        now = time.monotonic()
        if self._last_check is not None:
            self.pass_s = max(self.pass_s, now - self._last_check)
        self._last_check = now
        return self.stop.is_set() or self.abort.is_set() or now + self.pass_s >= self.deadline

    def remaining(self) -> float:
        return max(self.deadline - time.monotonic(), 0.0)


class Service:
    def __init__(self, settings: ServeSettings, factory: PredictorFactory, metrics: Metrics) -> None:
        self.settings = settings
        self.factory = factory
        self.metrics = metrics
        self.predictor: Predictor | None = None
        self.load_error: str | None = None
        self.limiter: anyio.CapacityLimiter | None = None
        self.batcher: MicroBatcher | None = None
        self.pending = 0  # requests admitted to inference and not yet answered (running or queued)
        self.closing = False  # SIGTERM: new requests get 503
        self.abort = threading.Event()  # the grace period is over: running work stops, answers 503
        self.last_pass_s = 0.0  # the longest forward pass of the last finished call (seeds new work)

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
            self.load_error = (
                exc.public
                if isinstance(exc, AdapterUnavailable)
                else _without_path(str(exc), self.settings.model)
                if isinstance(exc, LoranerError)
                else type(exc).__qualname__
            )
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
    def max_pending(self) -> int:
        """Requests admitted at once: one per inference slot (a micro-batch's worth each), plus the queue."""
        per_slot = self.settings.microbatch_max if self.batcher is not None else 1
        return self.settings.concurrency * per_slot + self.settings.max_queue

    @contextlib.contextmanager
    def admitted(self) -> Iterator[None]:
        """Count a request against the bounded queue; a full queue sheds it with a retryable 503."""
        if self.closing:
            raise _shutting_down()
        if self.pending >= self.max_pending:
            self.metrics.shed.inc()
            raise Unavailable(
                f"the server is busy ({self.pending} requests in progress or queued, the limit is "
                f"{self.max_pending}); retry shortly"
            )
        self.pending += 1
        self.metrics.pending.set(self.pending)
        try:
            yield
        finally:
            self.pending -= 1
            self.metrics.pending.set(self.pending)

    def new_work(self, stop: threading.Event | None = None) -> Work:
        return Work.starting_now(self.settings.request_timeout_s, stop, self.abort, self.last_pass_s)

    def begin_shutdown(self) -> None:
        """Called when the server starts shutting down: new requests are refused with a retryable 503;
        requests in flight get the grace period, then ``abort_work``."""
        self.closing = True
        log.info("shutting down", extra={"event": "shutting_down", "pending": self.pending})

    def abort_work(self) -> None:
        """The grace period is over: work still running stops between forward passes and answers 503."""
        if self.pending:
            log.warning("grace period over", extra={"event": "abort", "pending": self.pending})
        self.abort.set()

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
            if name is None:
                raise AdapterRequired(available)
            if name not in available:
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
        work: Work | None = None,
        adapters: Sequence[str | None] | None = None,
    ) -> list[list[Entity]]:
        """``predict_batch`` in a worker thread: the event loop keeps serving while the model runs.

        ``o_threshold``: this call's cut-off instead of the predictor's own (de-identification's).
        ``work``: the request's deadline and stop flag (default: a fresh deadline).
        ``adapters``: one name per text (checked by :meth:`check_adapters`), for a multi-adapter model."""
        self.require_predictor()
        with self.admitted():
            return await self._infer(texts, o_threshold, work or self.new_work(), adapters)

    async def analyze_batch(self, texts: list[str], *, work: Work | None = None) -> list[TextPrediction]:
        """``analyze_batch`` (entities with the token probabilities they come from), admitted and bounded
        as :meth:`run_batch` is; a single model's (callers check :attr:`adapter_names` is empty)."""
        self.require_predictor()
        with self.admitted():
            return await self._infer(texts, None, work or self.new_work(), analyze=True)

    async def run_one(
        self, text: str, adapter: str | None = None, *, work: Work | None = None
    ) -> list[Entity]:
        self.require_predictor()
        if self.batcher is None:
            return (await self.run_batch([text], work=work, adapters=[adapter]))[0]
        work = work or self.new_work()
        with self.admitted():
            try:
                with anyio.fail_after(work.remaining()):
                    return await self.batcher.submit(text, adapter)
            except TimeoutError:
                raise self._timed_out() from None

    async def _run_micro_batch(self, texts: list[str], adapters: list[str | None]) -> list[list[Entity]]:
        return await self._infer(texts, None, self.new_work(), adapters)

    async def _infer(
        self,
        texts: list[str],
        o_threshold: float | None,
        work: Work,
        adapters: Sequence[str | None] | None = None,
        *,
        analyze: bool = False,
    ) -> Any:
        predictor = self.require_predictor()
        # A multi-adapter model takes one adapter name per text; a single model takes none.
        per_text = (adapters or [None] * len(texts),) if self.adapter_names else ()
        assert self.limiter is not None, "Service.start() was not called"
        try:
            with anyio.fail_after(work.remaining()):
                await self.limiter.acquire()
        except TimeoutError:
            raise self._timed_out() from None
        try:
            started = time.perf_counter()
            job = partial(
                predictor.analyze_batch if analyze else predictor.predict_batch,  # type: ignore[attr-defined]
                texts,
                *per_text,
                o_threshold=o_threshold,
                should_stop=work.should_stop,
            )
            try:
                results = await anyio.to_thread.run_sync(job)
                self.last_pass_s = work.pass_s
            except Cancelled:
                if work.stop.is_set():
                    raise ClientGone from None
                if work.abort.is_set():
                    raise _shutting_down() from None
                raise self._timed_out() from None
        finally:
            self.limiter.release()
        entities = [r.entities for r in results] if analyze else results
        self.metrics.observe_inference(entities, len(texts), time.perf_counter() - started)
        return results

    def _timed_out(self) -> Unavailable:
        self.metrics.timeouts.inc()
        limit = self.settings.request_timeout_s
        return Unavailable(
            f"the request did not finish within the {limit:g} s limit (LORANER_REQUEST_TIMEOUT_S); "
            "retry later or send less text"
        )

    def adapter_churn(self) -> list[dict[str, Any]]:
        """Each adapter's loads and evictions, as ``/metrics`` reads them at every scrape (no disk)."""
        pool = getattr(self.predictor, "pool", None)
        names = getattr(self.predictor, "names", None)
        if pool is None or names is None:
            return []
        return [
            {"name": n, "loads": pool.load_counts[n], "evictions": pool.eviction_counts[n]} for n in names
        ]

    def adapters_info(self) -> list[dict[str, Any]]:
        info = getattr(self.predictor, "adapter_info", None)
        return [a.to_dict() for a in info()] if info is not None else []

    def info(self) -> dict[str, Any] | None:
        if self.predictor is None:
            return None
        data = self.predictor.info.to_dict()
        data["name"] = self.model_name
        return data
