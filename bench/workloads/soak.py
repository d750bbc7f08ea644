"""The ``soak`` workload: the int8 server under many closed-loop clients posting mixed lengths and invalid
bodies (``bench.lib.hostile.run_soak``). Targets: no errors, RSS growth after the first 30 s under 10 %."""

from __future__ import annotations

import json
from typing import Any

from bench.lib.common import Context, print_table, print_targets, target, write_result
from bench.lib.hostile import run_soak
from bench.lib.models import build_models


def run(ctx: Context) -> dict[str, Any]:
    """The ``soak`` workload."""
    models = build_models(ctx)
    ctx.log(f"soak: {ctx.sizes.soak_clients} clients x {ctx.sizes.soak_seconds:g} s, mixed lengths")
    row = run_soak(ctx, models.onnx_int8_dir)
    result = {
        "model": models.describe(),
        "server": "loraner serve, onnx int8, default limits",
        **row,
        "targets": [
            target("soak errors (5xx, transport, wrong status)", row["errors"], "<=", 0),
            target("soak RSS growth after the first 30 s", row["rss_growth_after_settle"], "<=", 0.10),
        ],
    }
    write_result(ctx, "soak", result)
    print_table(
        f"Soak ({result['model']['name']}, {row['clients']} clients, {row['seconds']} s)",
        [
            "requests",
            "errors",
            "p50 ms",
            "p99 ms",
            "RSS start",
            "RSS 30 s",
            "RSS middle",
            "RSS end",
            "growth",
        ],
        [
            [
                row["requests"],
                row["errors"],
                row["p50_ms"],
                row["p99_ms"],
                *row["rss_mb"].values(),
                row["rss_growth_after_settle"],
            ]
        ],
    )
    print(f"statuses: {json.dumps(row['statuses'])}; server side: {json.dumps(row['server_side'])}")
    print_targets("Soak targets", result["targets"])
    return result
