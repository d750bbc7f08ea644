"""Sizes, the run context, statistics, target checks, tables and the JSON results every workload shares."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parents[1]
REPO_DIR = BENCH_DIR.parent
CACHE_DIR = BENCH_DIR / ".cache"
RESULTS_DIR = BENCH_DIR / "results"

# The scale the issue gives for this machine class (2 cores): matrix-multiply peaks.
INT8_PEAK_OPS = 1.0e12
FP32_PEAK_FLOPS = 0.29e12


@dataclass(frozen=True)
class Sizes:
    """How much work each workload does. ``FULL`` keeps ``make bench`` under 30 minutes on 2 cores."""

    tiny_model: bool  # a 2-layer RoBERTa instead of the base-shaped one (smoke test)
    sentences: int  # the sentence set
    latency_sentences: int  # single-sentence calls per repeat, for p50/p99
    notes: int  # long clinical-style notes
    note_tokens: tuple[int, int]  # their length range, in tokens
    repeats: int
    note_repeats: int
    int8_batch_sizes: tuple[int, ...]  # the batch-size sweep of the int8 path
    accuracy_sentences: int  # CoNLL test sentences for the fp32 vs int8 F1 (0 = all)
    memory_requests: int
    load_seconds: float
    load_clients: tuple[int, ...]
    microbatch_ms: float
    train_samples: int  # the training set of the speed runs (base-shaped model)
    train_steps: int  # timed steps of random-batch recipe D (4 timing windows)
    train_steps_grouped: int  # loraner: its length-bucketed random batches (4 timing windows)
    train_steps_padded: int  # baseline C pads to 256 tokens: every step costs the same, fewer suffice
    f1_train_sentences: int  # CoNLL train sentences for the F1 check (one epoch, MiniLM)
    f1_eval_sentences: int
    f1_seeds: int  # training runs per recipe for the F1 check (seed-to-seed noise)
    compile_steps: int  # steps of the torch.compile probe (0 = skip)
    soak_clients: int = 64  # soak: closed-loop clients, mixed lengths and some invalid requests
    soak_seconds: float = 120.0
    # soak's parts: merged (one int8 model), churn (a base and adapters, more than it keeps loaded)
    soak_sections: tuple[str, ...] = ("merged", "churn")
    churn_adapters: int = 16  # churn: the adapters requests name at random (the adapters workload's 16)
    churn_max_loaded: int = 4  # churn: `--max-loaded-adapters`, so that requests load and evict them
    overload_clients: int = 256  # overload: far more clients than the queue admits
    overload_seconds: float = 60.0
    overload_timeout_s: float = 10.0  # the server's LORANER_REQUEST_TIMEOUT_S in the overload run
    scale_texts: int = 2000  # scale: texts through predict and --engine ray
    scale_train_samples: int = 256  # scale: training notes for 1 vs 2 processes
    scale_repeats: int = 3
    generalization_train: int = 0  # quickstart training notes of the generalization check (0 = the preset's)
    generalization_notes: int = 0  # Nor-DeID holdout notes it is scored on (0 = all 100)
    ceiling_tokens: int = 640  # bf16 linear-layer ceiling: tokens through one layer's shapes (16 x 40)
    ceiling_repeats: int = 7  # its interleaved repeats (median)
    adapter_requests: int = 200  # /predict requests to each multi-adapter server, spread over its adapters
    adapter_serve_counts: tuple[int, ...] = (1, 4, 16)  # adapters in the folder of each multi-adapter server
    adapter_serve_dtypes: tuple[str, ...] = (
        "fp32",
        "bf16",
        "int8",
        "onnx-int8",
    )  # the bases those servers run (fp32, bf16; int8: --base-quantization int8; onnx-int8: the base graph
    # of `loraner export onnx-adapters` on ONNX Runtime, --backend onnx)
    # The bases of the throughput rows (each with its merged-model reference: torch in fp32/bf16, the
    # merged model exported to ONNX int8 for the int8 bases); drop bf16 where it is emulated to save time.
    adapter_dtypes: tuple[str, ...] = ("fp32", "bf16", "int8", "onnx-int8")
    adapter_switches: int = 8  # alternating requests of the eviction probe (max_loaded=1)
    # The adapters workload's parts: throughput, memory (processes), servers, cold (loads and evictions).
    adapter_sections: tuple[str, ...] = ("throughput", "memory", "servers", "cold")
    # Start a workload's servers all at once, then drive each alone (memory, load, adapters): their
    # start-ups overlap on the cores, so each one's startup seconds include the others' work.
    servers_together: bool = False
    # training: every speed recipe in one worker process, one after another, instead of one process each:
    # a start-up per recipe saved, but no recipe then has a peak RSS of its own (the table shows none).
    one_training_process: bool = False
    openvino_calibration: int = 300  # texts the bench model's OpenVINO int8 IR is calibrated on (built once)
    # accuracy's bf16 agreement: test sentences where bf16 is emulated (AVX2: about 2 GFLOP/s, so the whole
    # CoNLL test set would take hours at base size); where bf16 is native it runs on all of them
    accuracy_emulated_bf16_sentences: int = 100
    # accuracy's parts: its four CoNLL training runs, then export (needs mpnet-lora), phi and quickstart;
    # e.g. `--set accuracy_parts=mpnet-lora,export` scores one trained run without starting the others.
    accuracy_parts: tuple[str, ...] = (
        "mpnet-lora",
        "mpnet-full",
        "minilm-lora",
        "minilm-full",
        "export",
        "phi",
        "quickstart",
    )


FULL = Sizes(
    tiny_model=False,
    sentences=300,
    latency_sentences=60,
    notes=8,
    note_tokens=(400, 3000),
    repeats=3,
    note_repeats=1,
    int8_batch_sizes=(8, 32),
    accuracy_sentences=0,
    memory_requests=1000,
    load_seconds=15.0,
    load_clients=(16, 64),
    microbatch_ms=10.0,
    train_samples=3200,
    train_steps=24,
    train_steps_grouped=50,
    train_steps_padded=4,
    f1_train_sentences=6000,  # one epoch, 375 steps
    f1_eval_sentences=1000,
    f1_seeds=3,
    compile_steps=0,  # the torch.compile probe: --set compile_steps=50 (bench/README.md has the result)
    scale_texts=2000,
    scale_train_samples=400,
    scale_repeats=2,
    generalization_train=0,
    generalization_notes=0,
    adapter_requests=200,
    adapter_serve_counts=(1, 4, 16),
    adapter_serve_dtypes=("fp32", "bf16", "int8", "onnx-int8"),
    adapter_switches=8,
)

QUICK = Sizes(
    tiny_model=True,
    sentences=48,
    latency_sentences=12,
    notes=2,
    note_tokens=(400, 900),
    repeats=2,
    note_repeats=1,
    int8_batch_sizes=(32,),
    accuracy_sentences=64,
    memory_requests=24,
    load_seconds=1.0,
    load_clients=(4,),
    microbatch_ms=5.0,
    train_samples=128,
    train_steps=4,  # four timing windows of one step
    train_steps_grouped=4,
    train_steps_padded=2,
    f1_train_sentences=0,
    f1_eval_sentences=0,
    f1_seeds=1,
    compile_steps=0,
    soak_clients=8,
    soak_seconds=6.0,
    overload_clients=96,  # more than the default concurrency + queue (66): some are shed
    overload_seconds=4.0,
    overload_timeout_s=5.0,
    scale_texts=100,
    scale_train_samples=64,
    scale_repeats=1,
    generalization_train=8,
    generalization_notes=3,
    ceiling_tokens=64,  # emulated bf16 (AVX2) runs 640 tokens at about 2 GFLOP/s: 5 s a layer
    ceiling_repeats=1,
    adapter_requests=16,
    adapter_serve_counts=(4,),
    adapter_serve_dtypes=(
        "bf16",
        "int8",
        "onnx-int8",
    ),  # the targets' servers only: each start-up costs seconds
    adapter_switches=4,
    servers_together=True,
    one_training_process=True,
    openvino_calibration=16,
)

SIMD_FLAGS = {"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_int8", "amx_bf16"}


def default_tokenizer() -> Path:
    """roberta-base's tokenizer in ../shared (``LORANER_SHARED`` overrides; ``--tokenizer`` replaces it)."""
    from loraner.settings import shared_dir

    return shared_dir() / "models" / "roberta-base-tokenizer"


@dataclass
class Context:
    """What every workload gets: the sizes, threads, where models are cached and results written, the
    trained model of the accuracy checks and the tokenizer of the benchmark models."""

    sizes: Sizes
    threads: int
    cache: Path
    results: Path
    trained_model: Path
    quick: bool
    tokenizer: Path = field(default_factory=default_tokenizer)
    seed: int = 0
    log: Callable[[str], None] = field(default=lambda msg: print(msg, flush=True))

    @property
    def work(self) -> Path:
        """This run's scratch files (server logs, training specs): its own, so runs can overlap."""
        return self.cache / "work" / str(os.getpid())


# --- statistics -------------------------------------------------------------------------------------


def median(values: Iterable[float]) -> float:
    data = [float(v) for v in values]
    return statistics.median(data) if data else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 100]); NaN for no values."""
    data = sorted(float(v) for v in values)
    if not data:
        return float("nan")
    pos = (len(data) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("nan")


class Stopwatch:
    def __enter__(self) -> Stopwatch:
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *_exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


class TimedBackend:
    """A predictor's backend with a clock around each ``logits`` call: ``seconds`` adds up the time spent
    in the model, so an end-to-end run minus ``seconds`` is the time outside it, in the same run."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.seconds = 0.0

    def __getattr__(self, name: str) -> Any:  # name, vocab_size, precision...: the wrapped backend's
        if name == "backend":  # not set yet (a copy being built): no endless lookup
            raise AttributeError(name)
        return getattr(self.backend, name)

    def logits(self, input_ids: Any, attention_mask: Any) -> Any:
        started = time.perf_counter()
        try:
            return self.backend.logits(input_ids, attention_mask)
        finally:
            self.seconds += time.perf_counter() - started


# --- targets ---------------------------------------------------------------------------------------


def target(name: str, value: float | None, op: str, threshold: float, note: str = "") -> dict[str, Any]:
    """A pass/fail check: ``value op threshold`` with op ``>=`` or ``<=``; ``None`` means not measured."""
    if value is None or value != value:  # NaN
        passed: bool | None = None
    elif op == ">=":
        passed = value >= threshold
    elif op == "<=":
        passed = value <= threshold
    else:
        raise ValueError(f"op must be >= or <=, got {op!r}")
    return {
        "name": name,
        "value": None if value is None or value != value else round(float(value), 4),
        "op": op,
        "threshold": threshold,
        "passed": passed,
        "note": note,
    }


def verdict(check: dict[str, Any]) -> str:
    return {True: "PASS", False: "FAIL", None: "n/a"}[check["passed"]]


# --- machine info and results ----------------------------------------------------------------------


def package_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def cpu_model_and_flags() -> tuple[str, set[str]]:
    cpu_model, flags = "", set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name") and not cpu_model:
                cpu_model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    return cpu_model or platform.processor(), flags


def cpu_class() -> str:
    """The class a CPU-dependent target is judged for (the library's, which ``backend=auto`` uses)."""
    from loraner.inference.backends import cpu_class as library_cpu_class

    return library_cpu_class(frozenset(cpu_model_and_flags()[1]))


def cpu_line() -> str:
    """One line naming the CPU, its class and its flags, printed at the start and end of a run."""
    model, flags = cpu_model_and_flags()
    return f"CPU: {model} [{cpu_class()}] flags: {' '.join(sorted(flags & SIMD_FLAGS)) or '-'}"


def native_bf16() -> bool:
    from loraner.inference.backends import native_bf16 as torch_says

    return torch_says()


def bf16_linear_ceiling(threads: int, repeats: int = 7, tokens: int = 640) -> dict[str, float]:
    """PyTorch's bf16 vs fp32 speed on this CPU for one RoBERTa-base layer's linear layers (query, key,
    value and output 768 -> 768, feed-forward 768 -> 3072 -> 768) over ``tokens`` tokens (640: 16
    sentences of 40): they hold over 80 % of the model's time, so a bf16 model gains at most about this
    much over fp32. Interleaved, median of ``repeats``."""
    import torch
    import torch.nn.functional as F

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(0)
    shapes = [(768, 768)] * 4 + [(768, 3072), (3072, 768)]
    layers32 = [
        (torch.randn(n, k, generator=generator), torch.randn(n, generator=generator)) for k, n in shapes
    ]
    inputs32 = {k: torch.randn(tokens, k, generator=generator) for k, _ in shapes}
    variants = {
        "fp32": (inputs32, layers32),
        "bf16": (
            {k: x.bfloat16() for k, x in inputs32.items()},
            [(w.bfloat16(), b.bfloat16()) for w, b in layers32],
        ),
    }

    def one_layer(inputs: dict[int, Any], layers: list[tuple[Any, Any]]) -> None:
        for (k, _), (weight, bias) in zip(shapes, layers, strict=True):
            F.linear(inputs[k], weight, bias)

    seconds: dict[str, list[float]] = {name: [] for name in variants}
    try:
        with torch.inference_mode():
            for inputs, layers in variants.values():  # warm-up: oneDNN picks and caches its kernels
                one_layer(inputs, layers)
            for _ in range(repeats):
                for name, (inputs, layers) in variants.items():
                    start = time.perf_counter()
                    for _ in range(3):
                        one_layer(inputs, layers)
                    seconds[name].append((time.perf_counter() - start) / 3)
    finally:
        torch.set_num_threads(previous)
    flops = sum(2 * tokens * k * n for k, n in shapes)
    fp32, bf16 = median(seconds["fp32"]), median(seconds["bf16"])
    return {
        "fp32_gflops": round(flops / fp32 / 1e9, 1),
        "bf16_gflops": round(flops / bf16 / 1e9, 1),
        "bf16_vs_fp32": round(fp32 / bf16, 2),
    }


def machine_info(threads: int) -> dict[str, Any]:
    cpu_model, flags = cpu_model_and_flags()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    mem_gb = None
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        first = meminfo.read_text().splitlines()[0].split()
        mem_gb = round(int(first[1]) / 2**20, 1)
    return {
        "cpu": cpu_model,
        # int8 matrix multiplies run about twice as fast with VNNI/AMX as with AVX2 alone
        "cpu_flags": sorted(flags & SIMD_FLAGS),
        "cpu_class": cpu_class(),
        "native_bf16": native_bf16(),
        "cores": cores,
        "memory_gb": mem_gb,
        "threads": threads,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": {
            name: package_version(name)
            for name in ("loraner", "torch", "transformers", "onnxruntime", "peft", "tokenizers")
        },
        "load_average_at_start": load_average(),
        "peaks": {"int8_ops_per_s": INT8_PEAK_OPS, "fp32_flops_per_s": FP32_PEAK_FLOPS},
    }


def write_result(ctx: Context, workload: str, payload: dict[str, Any]) -> Path:
    ctx.results.mkdir(parents=True, exist_ok=True)
    path = ctx.results / f"{workload}.json"
    body = {
        "workload": workload,
        "quick": ctx.quick,
        "sizes": asdict(ctx.sizes),
        "machine": machine_info(ctx.threads),
        "load_average_at_end": load_average(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **payload,
    }
    path.write_text(json.dumps(body, indent=2, default=_jsonable), encoding="utf-8")
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# --- tables ----------------------------------------------------------------------------------------


def fmt(value: Any, digits: int = 1) -> str:
    """A table cell: floats with ``digits`` decimals, except fractions (scores, shares, ratios under 1),
    which keep three decimals: an F1 of 0.8986 is 0.899, not 0.9."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:
            return "-"
        if 0 < abs(value) < 1:
            return f"{value:.3f}"
        return f"{value:,.{digits}f}"
    return str(value)


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A rich table on a terminal; the same table as plain aligned text otherwise (logs, CI, tests).
    Columns holding only numbers are right-aligned."""
    cells = [[c if isinstance(c, str) else fmt(c) for c in row] for row in rows]
    numeric = [all(not isinstance(row[i], str) for row in rows) and i > 0 for i in range(len(columns))]
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, title_justify="left")
        for column, right in zip(columns, numeric, strict=True):
            table.add_column(column, justify="right" if right else "left")
        for row in cells:
            table.add_row(*row)
        Console().print(table)
        return
    widths = [max(len(str(c)) for c in col) for col in zip(columns, *cells, strict=True)]
    rule = "  ".join("-" * w for w in widths)

    def line(values: Sequence[str]) -> str:
        parts = zip(values, widths, numeric, strict=True)
        return "  ".join(v.rjust(w) if right else v.ljust(w) for v, w, right in parts).rstrip()

    print(f"\n{title}\n{rule}\n{line(list(columns))}\n{rule}")
    for row in cells:
        print(line(row))
    print(rule, flush=True)


def print_targets(title: str, checks: Sequence[dict[str, Any]]) -> None:
    rows = [
        [c["name"], fmt(c["value"], 3), f"{c['op']} {c['threshold']}", verdict(c), c.get("note", "")]
        for c in checks
    ]
    print_table(title, ["target", "measured", "needed", "result", "note"], rows)
