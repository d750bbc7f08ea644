"""``python -m bench.run [--quick] [--only inference,memory,...]``: run the workloads (``bench.workloads``),
print their tables, write ``bench/results/<workload>.json`` and close with every target's verdict."""

from __future__ import annotations

import argparse
import importlib
import os
import resource
import shutil
import sys
import time
import warnings
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from bench.lib.common import (
    CACHE_DIR,
    FULL,
    QUICK,
    RESULTS_DIR,
    Context,
    Sizes,
    cpu_line,
    default_tokenizer,
    print_targets,
    verdict,
    write_result,
)
from bench.workloads import OPT_IN, WORKLOADS

DEFAULT_TRAINED = Path("runs/conll-lora/merged")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="tiny model and sizes (the smoke test, a few minutes)"
    )
    parser.add_argument(
        "--only",
        default=",".join(WORKLOADS),
        help=f"comma-separated subset of {','.join(WORKLOADS + OPT_IN)} (default: {','.join(WORKLOADS)})",
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="intra-op threads of every runtime (default 2)"
    )
    parser.add_argument(
        "--trained-model",
        type=Path,
        default=DEFAULT_TRAINED,
        help=f"trained CoNLL model for the int8 accuracy check (default {DEFAULT_TRAINED})",
    )
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="where the JSON files go")
    parser.add_argument("--cache", type=Path, default=CACHE_DIR, help="where built models are kept")
    parser.add_argument(
        "--tokenizer",
        type=Path,
        default=None,
        help="the RoBERTa tokenizer of the benchmark models (default: roberta-base's, "
        "../shared/models/roberta-base-tokenizer)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a size, e.g. --set repeats=1 --set sentences=50 --set load_clients=16,32",
    )
    args = parser.parse_args(argv)
    unknown = set(args.only.split(",")) - set(WORKLOADS + OPT_IN)
    if unknown:
        parser.error(
            f"--only: unknown workload(s) {', '.join(sorted(unknown))}; "
            f"choose from {', '.join(WORKLOADS + OPT_IN)}"
        )
    return args


def quiet_libraries(threads: int) -> None:
    """Same threads everywhere, offline, and no progress bars or load reports in the tables."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import logging

    import torch
    from transformers.utils import logging as hf_logging

    torch.set_num_threads(threads)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("loraner").setLevel(logging.WARNING)
    logging.getLogger().setLevel(logging.ERROR)  # onnxruntime.quantization's advice goes to the root logger
    warnings.filterwarnings("ignore", message="Tokenizer does not support real words")  # pipeline(), B


def override_sizes(sizes: Sizes, overrides: list[str]) -> Sizes:
    """``field=value`` pairs applied to ``sizes``; tuples take comma-separated values."""
    changes: dict[str, Any] = {}
    for item in overrides:
        name, _, raw = item.partition("=")
        current = getattr(sizes, name, None)
        if current is None or not raw:
            raise SystemExit(
                f"--set {item!r}: use FIELD=VALUE with FIELD one of {', '.join(fields_of(sizes))}"
            )
        if isinstance(current, tuple):
            kind = type(current[0])
            changes[name] = tuple(kind(v) for v in raw.split(","))
        elif isinstance(current, bool):
            changes[name] = raw.lower() in ("1", "true", "yes")
        else:
            changes[name] = type(current)(raw)
    return replace(sizes, **changes)


def fields_of(sizes: Sizes) -> list[str]:
    return [f.name for f in fields(sizes)]


def make_context(args: argparse.Namespace) -> Context:
    sizes = override_sizes(QUICK if args.quick else FULL, args.overrides)
    return Context(
        sizes=sizes,
        threads=args.threads,
        cache=args.cache,
        results=args.results,
        trained_model=args.trained_model,
        quick=args.quick,
        tokenizer=args.tokenizer or default_tokenizer(),
    )


def closing_note(results: dict[str, dict[str, Any]], seconds: float, quick: bool) -> None:
    checks = [c for r in results.values() for c in r.get("targets", [])]
    print_targets(f"All targets ({seconds / 60:.1f} minutes)", checks)
    print(f"{cpu_line()}: targets that depend on the CPU class were judged for this one.")
    failed = [c for c in checks if c["passed"] is False]
    missing = [c for c in checks if c["passed"] is None]
    if quick:
        print("Quick mode (tiny model, a few texts): the numbers check that the benchmark runs, not speed.")
    if not failed and not missing:
        print("All targets met.")
    for c in failed + missing:
        print(f"- {verdict(c)}: {c['name']} = {c['value']} (needed {c['op']} {c['threshold']}) {c['note']}")


def write_summary(ctx: Context, results: dict[str, dict[str, Any]], seconds: float, only: str) -> None:
    """``summary.json``: every target of this run in one place, with the run's duration."""
    write_result(
        ctx,
        "summary",
        {
            "workloads": only.split(","),
            "minutes": round(seconds / 60, 2),
            "targets": [c for r in results.values() for c in r.get("targets", [])],
        },
    )


def cpu_seconds() -> float:
    """CPU time of this process and of its children that have ended (servers, workers): what a workload
    cost, beside its wall time, when other jobs share the cores."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_libraries(args.threads)
    ctx = make_context(args)
    started = time.perf_counter()
    ctx.log(f"bench: {'quick' if ctx.quick else 'full'} run, {ctx.threads} threads, results in {ctx.results}")
    ctx.log(cpu_line())
    results: dict[str, dict[str, Any]] = {}
    for name in WORKLOADS + OPT_IN:
        if name in args.only.split(","):
            begun, cpu = time.perf_counter(), cpu_seconds()
            module = importlib.import_module(f"bench.workloads.{name}")
            results[name] = module.run(ctx)
            ctx.log(
                f"{name}: {time.perf_counter() - begun:.0f} s "
                f"({cpu_seconds() - cpu:.0f} s of CPU, its processes included)"
            )
    seconds = time.perf_counter() - started
    shutil.rmtree(ctx.work, ignore_errors=True)  # kept only when a workload raised, for its logs
    closing_note(results, seconds, ctx.quick)
    write_summary(ctx, results, seconds, args.only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
