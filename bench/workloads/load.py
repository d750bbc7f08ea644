"""Service under load: the int8 ``loraner serve`` on loopback, 16-64 concurrent clients posting single
sentences for a fixed time, with micro-batching off (``LORANER_MICROBATCH_MS=0``) and on.

The client runs on the same 2 cores as the server (its CPU time is reported); both settings pay it alike.
"""

from __future__ import annotations

import contextlib
from typing import Any

from bench.lib.common import Context, median, print_table, print_targets, ratio, target, write_result
from bench.lib.data import sentence_set
from bench.lib.models import build_models
from bench.lib.serving import Server, ServeSpec, drive, served_in_turn

WARMUP_REQUESTS = 16
MAX_REQUESTS = 100_000  # the time bound decides; this only bounds a runaway


def spec_for(ctx: Context, model_dir: Any, microbatch_ms: float) -> ServeSpec:
    env = {"LORANER_MICROBATCH_MS": str(microbatch_ms)}
    return ServeSpec(ctx.work / f"load-microbatch-{microbatch_ms:g}ms.log", model_dir, "onnx", env)


def run_setting(ctx: Context, server: Server, texts: list[str], microbatch_ms: float) -> list[dict[str, Any]]:
    rows = []
    drive(server.url, texts, 4, seconds=60, max_requests=WARMUP_REQUESTS)
    for clients in ctx.sizes.load_clients:
        stats = drive(server.url, texts, clients, ctx.sizes.load_seconds, MAX_REQUESTS)
        rows.append({"microbatch_ms": microbatch_ms, **stats.summary()})
    memory = server.memory_mb()
    for row in rows:
        row["server_peak_rss_mb"] = memory["peak_rss_mb"]
    return rows


def run(ctx: Context) -> dict[str, Any]:
    from loraner.modeldir import load_tokenizer

    models = build_models(ctx)
    tokenizer = load_tokenizer(models.torch_dir)
    texts = sentence_set(tokenizer, ctx.sizes.sentences, seed=ctx.seed).texts
    settings = (0.0, ctx.sizes.microbatch_ms)
    ctx.log(
        f"load: clients {ctx.sizes.load_clients} x {ctx.sizes.load_seconds:g} s, micro-batching {settings} ms"
    )
    specs = [spec_for(ctx, models.onnx_int8_dir, ms) for ms in settings]
    # Each setting is driven alone (an idle server started beside it takes no CPU).
    rows: list[dict[str, Any]] = []
    with contextlib.closing(served_in_turn(specs, ctx.threads, ctx.sizes.servers_together)) as ready:
        for ms, server in zip(settings, ready, strict=True):
            rows += run_setting(ctx, server, texts, ms)
    gains = {
        str(clients): round(
            ratio(
                next(r["requests_per_s"] for r in rows if r["clients"] == clients and r["microbatch_ms"] > 0),
                next(
                    r["requests_per_s"] for r in rows if r["clients"] == clients and r["microbatch_ms"] == 0
                ),
            ),
            2,
        )
        for clients in ctx.sizes.load_clients
    }
    result = {
        "model": models.describe(),
        "server": "loraner serve, onnx int8, default concurrency and batch size",
        "rows": rows,
        "microbatching_gain_requests_per_s": gains,
        "microbatching_gain_median": median(gains.values()),
        "targets": [
            target("load errors (all runs)", sum(r["errors"] for r in rows), "<=", 0),
        ],
    }
    write_result(ctx, "load", result)
    report(result)
    return result


def report(result: dict[str, Any]) -> None:
    print_table(
        f"Service under load ({result['model']['name']}, {result['server']})",
        ["micro-batch ms", "clients", "req/s", "p50 ms", "p99 ms", "errors", "requests", "client CPU s"],
        [
            [
                r["microbatch_ms"],
                r["clients"],
                r["requests_per_s"],
                r["p50_ms"],
                r["p99_ms"],
                r["errors"],
                r["requests_ok"],
                r["client_cpu_seconds"],
            ]
            for r in result["rows"]
        ],
    )
    gains = ", ".join(f"{c} clients x{g}" for c, g in result["microbatching_gain_requests_per_s"].items())
    print(f"micro-batching gain in requests/s: {gains}")
    print_targets("Load targets", result["targets"])
