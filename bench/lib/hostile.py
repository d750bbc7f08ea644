"""Hostile clients against a real ``loraner serve`` (loopback), shared by the ``soak`` and ``overload``
workloads.

``soak``: ``soak_clients`` closed-loop clients for ``soak_seconds`` posting a mix of single
sentences, paragraphs, long notes, small batches and invalid bodies (an empty text, a lone surrogate, a
batch over the limit, broken JSON) to a running server. Reports errors (any 5xx or transport error; the
invalid bodies must get their 4xx), p50/p99 of the valid requests, and the server's RSS at start, 30 s,
middle and end. ``run_soak`` soaks one model; ``run_churn_soak`` a multi-adapter server with a cap on
the adapters kept loaded, each request naming a random adapter (and some an unknown one: 404), with the
server's counts of adapter loads and evictions (``AdapterChurn``).

``run_overload``: ``overload_clients`` clients posting sentences with the server's request timeout set
to ``overload_timeout_s``. Reports the share shed with 503 (+ Retry-After), other errors, and p50/p99 of
the admitted requests, as the client sees them and as the server's access log records them.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.lib.common import Context, percentile
from bench.lib.data import generated_sentences
from bench.lib.serving import CONTAINER_ENV, Server, serve

Body = tuple[str, dict[str, Any] | str, int]  # path, JSON body (a string: sent as is), expected status
Probe = Callable[[httpx.AsyncClient], Awaitable[None]]
UNKNOWN_ADAPTER = "no-such-adapter"  # named by some churn-soak requests: 404, listing the served ones


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)  # valid requests answered 200
    statuses: dict[str, int] = field(default_factory=dict)
    errors: int = 0  # 5xx other than 503 sheds, transport errors, or a wrong answer to an invalid body
    examples: list[str] = field(default_factory=list)
    shed: int = 0
    retry_after_missing: int = 0

    def count(self, status: str) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1

    def error(self, what: str) -> None:
        self.errors += 1
        if len(self.examples) < 5:
            self.examples.append(what)


def soak_bodies(seed: int, adapters: Sequence[str] = ()) -> list[Body]:
    """(path, body, expected status) mixing lengths and some invalid requests. With ``adapters`` (a
    multi-adapter server without a default adapter), each valid body names a random one of them (every
    other batch one per text: a mixed batch), and one invalid body in five names an unknown adapter (the
    first: a short run sends it too)."""
    sentences = generated_sentences(400, seed)
    rng = random.Random(seed)

    def routed(body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "adapter": rng.choice(adapters)} if adapters else body

    bad: list[Body] = [
        ("/predict", {"text": "   "}, 422),
        ("/predict", '{"text": "Kari \\ud800 Nordmann"}', 422),
        ("/predict/batch", {"texts": ["x"] * 65}, 422),
        ("/predict", '{"text": ', 422),
    ]
    if adapters:
        bad.insert(0, ("/predict", {"text": sentences[0], "adapter": UNKNOWN_ADAPTER}, 404))
    bodies: list[Body] = []
    for i in range(400):
        kind = i % 10
        if kind < 5:
            bodies.append(("/predict", routed({"text": rng.choice(sentences)}), 200))
        elif kind < 7:
            bodies.append(("/predict", routed({"text": " ".join(rng.sample(sentences, 8))}), 200))
        elif kind == 7:
            bodies.append(("/predict", routed({"text": " ".join(rng.sample(sentences, 60))}), 200))
        elif kind == 8:
            texts = rng.sample(sentences, 6)
            mixed = bool(adapters) and i % 20 == 8
            batch = {"texts": texts, "adapters": [rng.choice(adapters) for _ in texts]} if mixed else None
            bodies.append(("/predict/batch", batch or routed({"texts": texts}), 200))
        else:
            bodies.append(bad[(i // 10) % len(bad)])
    return bodies


async def _post(client: httpx.AsyncClient, path: str, body: dict[str, Any] | str) -> httpx.Response:
    if isinstance(body, str):
        return await client.post(path, content=body, headers={"content-type": "application/json"})
    return await client.post(path, json=body)


async def closed_loop(
    url: str, bodies: list[Body], clients: int, seconds: float, on_tick: Probe | None = None
) -> tuple[Tally, float]:
    """``clients`` workers posting ``bodies`` in turn until ``seconds`` have passed; ``on_tick`` is
    awaited once a second with the client (one connection more than the workers is kept for it). A 503
    is a shed (the client backs off), unless it names an adapter: one that cannot be loaded is an error."""
    tally = Tally()
    limits = httpx.Limits(max_connections=clients + 1, max_keepalive_connections=clients + 1)
    sent = 0
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal sent
            while time.perf_counter() < deadline:
                path, body, expected = bodies[sent % len(bodies)]
                sent += 1
                started = time.perf_counter()
                try:
                    response = await _post(client, path, body)
                except httpx.HTTPError as exc:
                    tally.error(f"{type(exc).__name__}")
                    tally.count("transport error")
                    continue
                status = response.status_code
                tally.count(str(status))
                if status == 503 and "adapter" not in error_fields(response):
                    tally.shed += 1
                    if "retry-after" not in response.headers:
                        tally.retry_after_missing += 1
                    await asyncio.sleep(0.05)  # a polite client backs off a little
                elif status != expected:
                    tally.error(f"{path} -> HTTP {status} (expected {expected}): {response.text[:120]}")
                elif status == 200:
                    tally.latencies.append(time.perf_counter() - started)

        async def ticker() -> None:
            while on_tick is not None and time.perf_counter() < deadline:
                await on_tick(client)
                await asyncio.sleep(1.0)

        started = time.perf_counter()
        await asyncio.gather(ticker(), *(worker() for _ in range(clients)))
        return tally, time.perf_counter() - started


def error_fields(response: httpx.Response) -> dict[str, Any]:
    """The JSON object of an error answer (``detail``, ``request_id``...), or ``{}``."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def server_latencies(
    log_path: Any, paths: tuple[str, ...] = ("/predict", "/predict/batch")
) -> dict[str, Any]:
    """The server's own view from its access log (one JSON line per request, no text): status counts
    and p50/p99 of the 200s, from the moment the app saw the request to its answer. The client's figures
    also hold the time a request waited in the kernel's accept queue and the client's own event loop."""
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") != "request" or entry.get("path") not in paths:
            continue
        statuses[str(entry["status"])] = statuses.get(str(entry["status"]), 0) + 1
        if entry["status"] == 200:
            latencies.append(float(entry["latency_ms"]))
    return {
        "statuses": statuses,
        "p50_ms": round(percentile(latencies, 50), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(max(latencies), 1) if latencies else None,
    }


def rss_mb(server: Server) -> float | None:
    return server.memory_mb()["rss_mb"]


def soak(ctx: Context, server: Server, bodies: list[Body], probe: Probe | None = None) -> dict[str, Any]:
    """``soak_clients`` closed-loop clients posting ``bodies`` to ``server`` for ``soak_seconds``, its
    RSS sampled once a second (``probe`` awaited after each sample): requests, statuses, errors, p50/p99
    of the valid requests (client and server side), RSS at start, after the settling time (30 s, or a
    quarter of a shorter run), in the middle and at the end, the growth from the settled RSS to the end,
    and the peak."""
    sizes = ctx.sizes
    samples: list[tuple[float, float | None]] = []
    start_rss = rss_mb(server)
    began = time.perf_counter()

    async def tick(client: httpx.AsyncClient) -> None:
        samples.append((time.perf_counter() - began, rss_mb(server)))
        if probe is not None:
            await probe(client)

    tally, seconds = asyncio.run(
        closed_loop(server.url, bodies, sizes.soak_clients, sizes.soak_seconds, tick)
    )
    end = server.memory_mb()
    seen = server_latencies(server.log)
    settle = min(30.0, sizes.soak_seconds / 4)
    after_settle = [m for t, m in samples if t >= settle and m is not None]
    middle = [m for t, m in samples if t >= sizes.soak_seconds / 2 and m is not None]
    at_settle = after_settle[0] if after_settle else None
    end_rss = end["rss_mb"]
    growth = (end_rss - at_settle) / at_settle if at_settle and end_rss else None
    return {
        "clients": sizes.soak_clients,
        "seconds": round(seconds, 1),
        "requests": sum(tally.statuses.values()),
        "statuses": tally.statuses,
        "errors": tally.errors,
        "error_examples": tally.examples,
        "shed_503": tally.shed,
        "p50_ms": round(1000 * percentile(tally.latencies, 50), 1),
        "p99_ms": round(1000 * percentile(tally.latencies, 99), 1),
        "server_side": seen,
        "rss_mb": {
            "start": start_rss,
            f"at_{settle:g}s": at_settle,
            "middle": middle[0] if middle else None,
            "end": end_rss,
        },
        "rss_growth_after_settle": None if growth is None else round(growth, 4),
        "settle_seconds": settle,
        "peak_rss_mb": end["peak_rss_mb"],
    }


def run_soak(ctx: Context, model_dir: Any) -> dict[str, Any]:
    """The soak against ``loraner serve --model model_dir --backend onnx`` with the service defaults."""
    with serve(model_dir, "onnx", ctx.threads, ctx.work / "soak.log") as server:
        return soak(ctx, server, soak_bodies(ctx.seed))


@dataclass
class AdapterChurn:
    """A multi-adapter server's ``GET /adapters`` during a soak: polled once a second for the adapters
    loaded at once (a mixed batch may hold more than the cap while it runs), and read once at the end for
    the server's own load and eviction counts."""

    polls: int = 0
    failed_polls: int = 0
    most_loaded: int = 0
    ever_loaded: set[str] = field(default_factory=set)
    loads: int = 0
    evictions: int = 0

    async def poll(self, client: httpx.AsyncClient) -> None:
        try:
            response = await client.get("/adapters")
            response.raise_for_status()
            adapters = response.json()["adapters"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            self.failed_polls += 1
            return
        self.polls += 1
        loaded = {a["name"] for a in adapters if a["loaded"]}
        self.most_loaded = max(self.most_loaded, len(loaded))
        self.ever_loaded |= loaded

    def count(self, url: str) -> None:
        """The server's loads and evictions so far, summed over its adapters."""
        adapters = httpx.get(f"{url}/adapters", timeout=30).raise_for_status().json()["adapters"]
        self.loads = sum(a["loads"] for a in adapters)
        self.evictions = sum(a["evictions"] for a in adapters)

    def summary(self) -> dict[str, Any]:
        return {
            "polls": self.polls,
            "failed_polls": self.failed_polls,
            "loads": self.loads,
            "evictions": self.evictions,
            "most_loaded_at_once": self.most_loaded,
            "adapters_seen_loaded": len(self.ever_loaded),
            "source": "loads and evictions: the server's counts (GET /adapters) at the end; loaded "
            "adapters: GET /adapters polled once a second",
        }


def run_churn_soak(
    ctx: Context, serve_args: Sequence[str], names: Sequence[str], max_loaded: int, log: Path
) -> dict[str, Any]:
    """The soak against ``loraner serve serve_args --max-loaded-adapters max_loaded`` (a base and its
    adapters, no default adapter) with the container's settings, each valid request naming a random one
    of ``names``; ``GET /adapters`` polled beside each RSS sample (``AdapterChurn``)."""
    churn = AdapterChurn()
    args = [*serve_args, "--max-loaded-adapters", str(max_loaded)]
    with serve(None, "onnx", ctx.threads, log, env=CONTAINER_ENV, model_args=args) as server:
        row = soak(ctx, server, soak_bodies(ctx.seed, names), churn.poll)
        churn.count(server.url)
    return {
        **row,
        "startup_seconds": round(server.ready_seconds, 1),
        "adapters": len(names),
        "max_loaded_adapters": max_loaded,
        "server_env": CONTAINER_ENV,
        "adapter_churn": churn.summary(),
    }


def run_overload(ctx: Context, model_dir: Any) -> dict[str, Any]:
    sizes = ctx.sizes
    log = ctx.work / "overload.log"
    env = {"LORANER_REQUEST_TIMEOUT_S": str(sizes.overload_timeout_s)}
    sentences = generated_sentences(400, ctx.seed)
    bodies = [("/predict", {"text": s}, 200) for s in sentences]
    with serve(model_dir, "onnx", ctx.threads, log, env=env) as server:
        tally, seconds = asyncio.run(
            closed_loop(server.url, bodies, sizes.overload_clients, sizes.overload_seconds)
        )
        peak = server.memory_mb()["peak_rss_mb"]
        seen = server_latencies(log, ("/predict",))
    total = sum(tally.statuses.values())
    return {
        "clients": sizes.overload_clients,
        "seconds": round(seconds, 1),
        "request_timeout_s": sizes.overload_timeout_s,
        "requests": total,
        "admitted": len(tally.latencies),
        "shed_503": tally.shed,
        "shed_share": round(tally.shed / total, 4) if total else None,
        "shed_without_retry_after": tally.retry_after_missing,
        "statuses": tally.statuses,
        "errors": tally.errors,
        "error_examples": tally.examples,
        "admitted_p50_ms": round(1000 * percentile(tally.latencies, 50), 1),
        "admitted_p99_ms": round(1000 * percentile(tally.latencies, 99), 1),
        "server_side": seen,
        "server_peak_rss_mb": peak,
        "load_average": os.getloadavg(),
    }
