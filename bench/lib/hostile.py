"""Hostile clients against a real ``loraner serve`` (loopback), shared by the ``soak`` and ``overload``
workloads.

``run_soak``: ``soak_clients`` closed-loop clients for ``soak_seconds`` posting a mix of single
sentences, paragraphs, long notes, small batches and invalid bodies (an empty text, a lone surrogate, a
batch over the limit). Reports errors (any 5xx or transport error; the invalid bodies must get their
4xx), p50/p99 of the valid requests, and the server's RSS at start, 30 s, middle and end.

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
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.lib.common import Context, percentile
from bench.lib.data import generated_sentences
from bench.lib.serving import Server, serve


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


def soak_bodies(seed: int) -> list[tuple[str, dict[str, Any] | str, int]]:
    """(path, body, expected status) mixing lengths and some invalid requests."""
    sentences = generated_sentences(400, seed)
    rng = random.Random(seed)
    bodies: list[tuple[str, dict[str, Any] | str, int]] = []
    for i in range(400):
        kind = i % 10
        if kind < 5:
            bodies.append(("/predict", {"text": rng.choice(sentences)}, 200))
        elif kind < 7:
            bodies.append(("/predict", {"text": " ".join(rng.sample(sentences, 8))}, 200))
        elif kind == 7:
            bodies.append(("/predict", {"text": " ".join(rng.sample(sentences, 60))}, 200))
        elif kind == 8:
            bodies.append(("/predict/batch", {"texts": rng.sample(sentences, 6)}, 200))
        else:
            bad = [
                ("/predict", {"text": "   "}, 422),
                ("/predict", '{"text": "Kari \\ud800 Nordmann"}', 422),
                ("/predict/batch", {"texts": ["x"] * 65}, 422),
                ("/predict", '{"text": ', 422),
            ]
            bodies.append(bad[(i // 10) % len(bad)])
    return bodies


async def _post(client: httpx.AsyncClient, path: str, body: dict[str, Any] | str) -> httpx.Response:
    if isinstance(body, str):
        return await client.post(path, content=body, headers={"content-type": "application/json"})
    return await client.post(path, json=body)


async def closed_loop(
    url: str, bodies: list[tuple[str, Any, int]], clients: int, seconds: float, on_tick: Any = None
) -> tuple[Tally, float]:
    tally = Tally()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
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
                if status == 503:
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
                on_tick()
                await asyncio.sleep(1.0)

        started = time.perf_counter()
        await asyncio.gather(ticker(), *(worker() for _ in range(clients)))
        return tally, time.perf_counter() - started


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


def run_soak(ctx: Context, model_dir: Any) -> dict[str, Any]:
    sizes = ctx.sizes
    log = ctx.work / "soak.log"
    samples: list[tuple[float, float | None]] = []
    with serve(model_dir, "onnx", ctx.threads, log) as server:
        start_rss = rss_mb(server)
        began = time.perf_counter()

        def tick() -> None:
            samples.append((time.perf_counter() - began, rss_mb(server)))

        tally, seconds = asyncio.run(
            closed_loop(server.url, soak_bodies(ctx.seed), sizes.soak_clients, sizes.soak_seconds, tick)
        )
        end_rss = rss_mb(server)
        seen = server_latencies(log)
    settle = min(30.0, sizes.soak_seconds / 4)
    after_settle = [m for t, m in samples if t >= settle and m is not None]
    middle = [m for t, m in samples if t >= sizes.soak_seconds / 2 and m is not None]
    at_settle = after_settle[0] if after_settle else None
    growth = (end_rss - at_settle) / at_settle if at_settle and end_rss else None
    return {
        "clients": sizes.soak_clients,
        "seconds": round(seconds, 1),
        "requests": sum(tally.statuses.values()),
        "statuses": tally.statuses,
        "errors": tally.errors,
        "error_examples": tally.examples,
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
