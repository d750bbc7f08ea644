"""Memory: peak RSS of a ``loraner serve`` process after N requests, with the int8 ONNX model (the
deployment, target <= 450 MB for a 1 GB box) and with the PyTorch fp32 model (for comparison).

The requests are the sentence set with one long note every ``NOTE_EVERY`` requests (a service also
sees long texts, and they set the peak: ``bench.lib.serving.request_texts``), sent by ``CLIENTS``
concurrent connections.
"""

from __future__ import annotations

import contextlib
from typing import Any

from bench.lib.common import Context, print_table, print_targets, target, write_result
from bench.lib.data import long_notes, sentence_set
from bench.lib.models import build_models
from bench.lib.serving import (
    CONTAINER_ENV,
    NOTE_EVERY,
    Server,
    ServeSpec,
    drive,
    request_texts,
    served_in_turn,
)

CLIENTS = 4
PEAK_TARGET_MB = 450.0


def measure_server(
    ctx: Context, name: str, spec: ServeSpec, server: Server, texts: list[str]
) -> dict[str, Any]:
    idle = server.memory_mb()
    stats = drive(server.url, texts, CLIENTS, seconds=3600, max_requests=ctx.sizes.memory_requests)
    after = server.memory_mb()
    return {
        "server": name,
        "backend": spec.backend,
        "env": spec.env or {},
        "model": str(spec.model_dir),
        "startup_seconds": round(server.ready_seconds, 1),
        "rss_ready_mb": idle["rss_mb"],
        "rss_after_mb": after["rss_mb"],
        "peak_rss_mb": after["peak_rss_mb"],
        "load": stats.summary(),
        "log": str(spec.log),
    }


def run(ctx: Context) -> dict[str, Any]:
    from loraner.modeldir import load_tokenizer

    models = build_models(ctx)
    tokenizer = load_tokenizer(models.torch_dir)
    sentences = sentence_set(tokenizer, ctx.sizes.sentences, seed=ctx.seed)
    notes = long_notes(tokenizer, max(2, ctx.sizes.notes), ctx.sizes.note_tokens, seed=ctx.seed)
    texts = request_texts(sentences.texts, notes.texts)
    ctx.log(f"memory: {ctx.sizes.memory_requests} requests to each server ({CLIENTS} clients)")
    specs = {
        "onnx-int8, container settings": ServeSpec(
            ctx.work / "memory-int8-container.log", models.onnx_int8_dir, "onnx", CONTAINER_ENV
        ),
        "onnx-int8, defaults": ServeSpec(ctx.work / "memory-int8.log", models.onnx_int8_dir, "onnx"),
        "torch-fp32, defaults": ServeSpec(ctx.work / "memory-torch.log", models.torch_dir, "torch"),
    }
    # Each server is driven alone; RSS is per process, so servers started together do not change it.
    together = ctx.sizes.servers_together
    with contextlib.closing(served_in_turn(list(specs.values()), ctx.threads, together)) as ready:
        servers = [
            measure_server(ctx, name, spec, server, texts)
            for (name, spec), server in zip(specs.items(), ready, strict=True)
        ]
    int8 = servers[0]
    errors = sum(s["load"]["errors"] for s in servers)
    result = {
        "model": models.describe(),
        "requests": ctx.sizes.memory_requests,
        "clients": CLIENTS,
        "long_note_every": NOTE_EVERY,
        "servers": servers,
        "targets": [
            target(
                f"int8 serve peak RSS after {ctx.sizes.memory_requests} requests (MB), container settings",
                int8["peak_rss_mb"],
                "<=",
                PEAK_TARGET_MB,
                f"{models.name}: {int8['rss_ready_mb']} MB when ready; with service defaults (2 concurrent "
                f"calls) {servers[1]['peak_rss_mb']} MB; torch fp32 {servers[2]['peak_rss_mb']} MB",
            ),
            target("memory run errors", errors, "<=", 0),
        ],
    }
    write_result(ctx, "memory", result)
    report(result)
    return result


def report(result: dict[str, Any]) -> None:
    print_table(
        f"Memory: `loraner serve` after {result['requests']} requests ({result['model']['name']})",
        ["server", "startup s", "RSS ready MB", "RSS after MB", "peak RSS MB", "errors"],
        [
            [
                s["server"],
                s["startup_seconds"],
                s["rss_ready_mb"],
                s["rss_after_mb"],
                s["peak_rss_mb"],
                s["load"]["errors"],
            ]
            for s in result["servers"]
        ],
    )
    print_targets("Memory targets", result["targets"])
