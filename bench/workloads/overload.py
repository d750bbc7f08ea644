"""The ``overload`` workload: far more clients than the int8 server admits
(``bench.lib.hostile.run_overload``). Targets: admitted p99 under the request timeout, no errors other
than the 503 sheds."""

from __future__ import annotations

import json
from typing import Any

from bench.lib.common import Context, print_table, print_targets, target, write_result
from bench.lib.hostile import run_overload
from bench.lib.models import build_models


def run(ctx: Context) -> dict[str, Any]:
    models = build_models(ctx)
    sizes = ctx.sizes
    ctx.log(f"overload: {sizes.overload_clients} clients x {sizes.overload_seconds:g} s")
    row = run_overload(ctx, models.onnx_int8_dir)
    limit_ms = 1000 * row["request_timeout_s"]
    result = {
        "model": models.describe(),
        "server": "loraner serve, onnx int8, default queue",
        **row,
        "targets": [
            target(
                "overload admitted p99 (ms, server side) under the request timeout",
                row["server_side"]["p99_ms"],
                "<=",
                limit_ms,
                note="the app's own latency, from its access log",
            ),
            target(
                "overload admitted p99 (ms, client side) under the request timeout",
                row["admitted_p99_ms"],
                "<=",
                limit_ms,
                note="also the kernel accept queue and the client's loop, on the same cores",
            ),
            target("overload errors other than 503 sheds", row["errors"], "<=", 0),
            target("overload 503s without Retry-After", row["shed_without_retry_after"], "<=", 0),
        ],
    }
    write_result(ctx, "overload", result)
    print_table(
        f"Overload ({result['model']['name']}, {row['clients']} clients, {row['seconds']} s)",
        [
            "requests",
            "admitted",
            "shed 503",
            "shed share",
            "errors",
            "admitted p50 ms",
            "admitted p99 ms",
            "timeout ms",
        ],
        [
            [
                row["requests"],
                row["admitted"],
                row["shed_503"],
                row["shed_share"],
                row["errors"],
                row["admitted_p50_ms"],
                row["admitted_p99_ms"],
                limit_ms,
            ]
        ],
    )
    print(f"statuses: {json.dumps(row['statuses'])}; server side: {json.dumps(row['server_side'])}")
    print(f"load average (1, 5, 15 min): {row['load_average']}")
    print_targets("Overload targets", result["targets"])
    return result
