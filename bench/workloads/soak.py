"""The ``soak`` workload: servers under many closed-loop clients posting mixed lengths and invalid bodies
(``bench.lib.hostile.soak``), each for ``soak_seconds``. Two parts (``soak_sections``):

* ``merged``: one merged model, the int8 ONNX export, service defaults.
* ``churn``: the 1 GB box's adapter route, ONNX Runtime's int8 base graph with ``churn_adapters`` made
  adapters (``loraner export onnx-adapters``; ``bench.lib.adapters``) and ``--max-loaded-adapters
  churn_max_loaded`` with the container's settings; each request names a random adapter, so adapters
  are loaded and evicted all the time, and some name an unknown one (404). The loads and evictions are
  the server's counts (``GET /adapters``).

Targets: no errors, RSS growth after the first 30 s at most 10 %, and (churn) at least one eviction."""

from __future__ import annotations

import json
from typing import Any

from bench.lib.adapters import N_ADAPTERS, build_adapters, onnx_serve_args
from bench.lib.common import Context, print_table, print_targets, target, write_result
from bench.lib.hostile import run_churn_soak, run_soak
from bench.lib.models import build_base, build_models

SECTIONS = ("merged", "churn")
RSS_GROWTH = 0.10


def run(ctx: Context) -> dict[str, Any]:
    """The ``soak`` workload."""
    sections = ctx.sizes.soak_sections
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise SystemExit(f"soak_sections: unknown {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    result: dict[str, Any] = {}
    targets: list[dict[str, Any]] = []
    if "merged" in sections:
        models = build_models(ctx)
        ctx.log(f"soak: {ctx.sizes.soak_clients} clients x {ctx.sizes.soak_seconds:g} s, mixed lengths")
        row = run_soak(ctx, models.onnx_int8_dir)
        result |= {"model": models.describe(), "server": "loraner serve, onnx int8, default limits", **row}
        targets += [
            target("soak errors (5xx, transport, wrong status)", row["errors"], "<=", 0),
            target("soak RSS growth after the first 30 s", row["rss_growth_after_settle"], "<=", RSS_GROWTH),
        ]
    if "churn" in sections:
        result["churn"] = churn(ctx)
        targets += churn_targets(result["churn"])
    result["targets"] = targets
    write_result(ctx, "soak", result)
    if "merged" in sections:
        name, clients, seconds = result["model"]["name"], result["clients"], result["seconds"]
        report_row(f"Soak ({name}, {clients} clients, {seconds} s)", result)
    if "churn" in sections:
        c = result["churn"]
        report_row(
            f"Soak, adapter churn ({c['model']}, onnx int8 base, {c['adapters']} adapters, "
            f"--max-loaded-adapters {c['max_loaded_adapters']}, {c['clients']} clients, {c['seconds']} s)",
            c,
            {
                "loads": c["adapter_churn"]["loads"],
                "evictions": c["adapter_churn"]["evictions"],
                "most loaded": c["adapter_churn"]["most_loaded_at_once"],
            },
        )
    print_targets("Soak targets", targets)
    return result


def churn(ctx: Context) -> dict[str, Any]:
    sizes = ctx.sizes
    if not 1 <= sizes.churn_adapters <= N_ADAPTERS:
        raise SystemExit(f"churn_adapters: between 1 and the {N_ADAPTERS} adapters built")
    base = build_base(ctx)
    aset = build_adapters(base, ctx.cache, ctx.log, seed=ctx.seed)
    names = aset.names[: sizes.churn_adapters]
    serve_args = onnx_serve_args(ctx, base, aset, len(names))
    ctx.log(
        f"soak, adapter churn: {sizes.soak_clients} clients x {sizes.soak_seconds:g} s over {len(names)} "
        f"adapters, at most {sizes.churn_max_loaded} loaded"
    )
    row = run_churn_soak(ctx, serve_args, names, sizes.churn_max_loaded, ctx.work / "soak-churn.log")
    return {"model": base.name, "server": "loraner serve --base --adapters, onnx int8 base", **row}


def churn_targets(c: dict[str, Any]) -> list[dict[str, Any]]:
    pool = c["adapter_churn"]
    return [
        target(
            "churn soak errors (5xx, transport, wrong status, failed GET /adapters)",
            c["errors"] + pool["failed_polls"],
            "<=",
            0,
            f"{c['requests']} requests; an unknown adapter must get 404",
        ),
        target(
            "churn soak RSS growth after the first 30 s",
            c["rss_growth_after_settle"],
            "<=",
            RSS_GROWTH,
            f"peak {c['peak_rss_mb']} MB",
        ),
        target(
            "churn soak evictions (the server's count)",
            pool["evictions"],
            ">=",
            1,
            f"{pool['loads']} loads; at most "
            f"{c['max_loaded_adapters']} of {c['adapters']} adapters kept loaded",
        ),
    ]


def report_row(title: str, row: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
    """One soak's table (requests, errors, latency, RSS over time, and ``extra`` columns), then its
    statuses as the client and the server's access log saw them."""
    extra = extra or {}
    print_table(
        title,
        [
            *("requests", "errors", "503 shed", "p50 ms", "p99 ms"),
            *("RSS start", f"RSS {row['settle_seconds']:g} s", "RSS middle", "RSS end", "growth", "peak RSS"),
            *extra,
        ],
        [
            [
                row["requests"],
                row["errors"],
                row["shed_503"],
                row["p50_ms"],
                row["p99_ms"],
                *row["rss_mb"].values(),
                row["rss_growth_after_settle"],
                row["peak_rss_mb"],
                *extra.values(),
            ]
        ],
    )
    print(f"statuses: {json.dumps(row['statuses'])}; server side: {json.dumps(row['server_side'])}")
