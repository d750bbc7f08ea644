"""Prometheus metrics. Each app owns its registry, so several apps (tests) never clash on names."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from loraner.types import Entity

# The method label takes these values only: a client choosing random method names must not grow /metrics.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "loraner_requests_total", "HTTP requests", ["method", "path", "status"], registry=r
        )
        self.errors = Counter(
            "loraner_request_errors_total",
            "HTTP responses with status >= 400",
            ["path", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "loraner_request_latency_seconds",
            "HTTP request latency",
            ["path"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inference_latency = Histogram(
            "loraner_inference_seconds", "Time in predict_batch", buckets=LATENCY_BUCKETS, registry=r
        )
        self.batch_texts = Histogram(
            "loraner_inference_batch_texts",
            "Texts per predict_batch call",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=r,
        )
        self.texts = Counter("loraner_texts_total", "Texts processed", registry=r)
        self.entities = Counter("loraner_entities_total", "Entities returned", ["type"], registry=r)
        # Labels are configured adapter names only (checked before counting): bounded cardinality.
        self.adapter_requests = Counter(
            "loraner_adapter_texts_total",
            "Texts per adapter (multi-adapter serving)",
            ["adapter"],
            registry=r,
        )
        self.ready = Gauge("loraner_model_ready", "1 once the model is loaded", registry=r)
        self.pending = Gauge(
            "loraner_requests_pending", "Requests running or queued for inference", registry=r
        )
        self.shed = Counter(
            "loraner_requests_shed_total", "Requests refused (503) with a full queue", registry=r
        )
        self.timeouts = Counter(
            "loraner_request_timeouts_total", "Requests stopped at LORANER_REQUEST_TIMEOUT_S", registry=r
        )

    def observe_request(self, method: str, path: str, status: int, seconds: float) -> None:
        method = method if method in HTTP_METHODS else "other"
        self.requests.labels(method, path, str(status)).inc()
        self.latency.labels(path).observe(seconds)
        if status >= 400:
            self.errors.labels(path, str(status)).inc()

    def observe_inference(self, results: Iterable[list[Entity]], n_texts: int, seconds: float) -> None:
        self.inference_latency.observe(seconds)
        self.batch_texts.observe(n_texts)
        self.texts.inc(n_texts)
        for entities in results:
            for entity in entities:
                self.entities.labels(entity.type).inc()

    def watch_adapters(self, adapters: Callable[[], Iterable[Mapping[str, Any]]]) -> None:
        """Expose each adapter's loads and evictions, read from ``adapters`` (name, loads, evictions)
        at every scrape: the pool owns the counts, /metrics only reports them."""
        self.registry.register(AdapterChurn(adapters))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class AdapterChurn(Collector):
    """``loraner_adapter_loads_total`` and ``loraner_adapter_evictions_total`` per adapter: an adapter
    loaded and evicted over and over (more adapters in use than LORANER_MAX_LOADED_ADAPTERS) shows as both
    growing together. Nothing is exposed while no adapter is served."""

    def __init__(self, adapters: Callable[[], Iterable[Mapping[str, Any]]]) -> None:
        self.adapters = adapters

    def collect(self) -> Iterator[CounterMetricFamily]:
        adapters = list(self.adapters())
        if not adapters:
            return
        loads = CounterMetricFamily(
            "loraner_adapter_loads",
            "Adapter loads (a reload after an eviction counts again)",
            labels=["adapter"],
        )
        evictions = CounterMetricFamily(
            "loraner_adapter_evictions",
            "Adapters evicted past LORANER_MAX_LOADED_ADAPTERS",
            labels=["adapter"],
        )
        for adapter in adapters:
            loads.add_metric([adapter["name"]], adapter["loads"])
            evictions.add_metric([adapter["name"]], adapter["evictions"])
        yield loads
        yield evictions
