"""``loraner predict``, ``loraner serve`` and ``loraner export onnx``: option parsing over library calls.

Torch, the ONNX exporter and the web server are imported inside the commands that need them, so
registering the commands costs little and the slim serving image (no torch) can run ``loraner serve``.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from loraner.commands import friendly_errors
from loraner.commands.batch import STRICT_HELP, Engine, check_input_output, model_or_adapter, run_file_job
from loraner.data.words import WordSplit
from loraner.errors import ConfigError
from loraner.inference import Aggregation, BackendName
from loraner.inference.backends import COMPILE_HELP, DEFAULT_DTYPE, DTYPE_HELP, DType
from loraner.inference.predictor import DEFAULT_BATCH_SIZE
from loraner.jobs import Job, read_texts, run_text
from loraner.modeldir import Quantization, hub_id, local_model_source
from loraner.serve.settings import LogLevel, ServeSettings


def register(app: typer.Typer) -> None:
    app.command("predict")(friendly_errors(predict))
    app.command("serve")(friendly_errors(serve))
    export_app = typer.Typer(help="Export models for serving.", no_args_is_help=True)
    export_app.command("onnx")(friendly_errors(export_onnx))
    app.add_typer(export_app, name="export")


def predict(
    text: str | None = typer.Argument(None, help="Text to analyse (or use --input)"),
    model: Path | None = typer.Option(
        None, "--model", "-m", help="Merged or exported model directory, or a hub id OWNER/NAME[@REVISION]"
    ),
    adapter: Path | None = typer.Option(
        None, "--adapter", help="LoRA adapter directory or hub id (not with --model)"
    ),
    base: str | None = typer.Option(
        None, "--base", help="The adapter's base model: path, hub id or pkg:MODULE (default: as recorded)"
    ),
    dtype: DType = typer.Option(DEFAULT_DTYPE, "--dtype", help=DTYPE_HELP, envvar="LORANER_DTYPE"),
    compile_model: bool = typer.Option(False, "--compile", help=COMPILE_HELP, envvar="LORANER_COMPILE"),
    input_: Path | None = typer.Option(
        None, "--input", "-i", help='JSONL file, one {"text": ...} per line, or a .txt file (one text)'
    ),
    output: Path | None = typer.Option(None, "--output", "-o", help="JSONL output (default: stdout)"),
    backend: BackendName = typer.Option("auto", "--backend", help="Runtime for the model"),
    device: str = typer.Option("cpu", "--device"),
    threads: int | None = typer.Option(None, "--threads", help="Runtime threads (default: all cores)"),
    batch_size: int = typer.Option(DEFAULT_BATCH_SIZE, "--batch-size", help="Windows per forward pass"),
    max_length: int | None = typer.Option(None, "--max-length", help="Window size in tokens"),
    stride: int | None = typer.Option(None, "--stride", help="Tokens shared by consecutive windows"),
    aggregation: Aggregation = typer.Option("first", "--aggregation", help="How a word's label is chosen"),
    o_threshold: float | None = typer.Option(
        None, "--o-threshold", help="Entity wherever P(O) is below this"
    ),
    word_split: WordSplit | None = typer.Option(
        None, "--word-split", help="What a word is (default: as the model was trained)"
    ),
    engine: Engine = typer.Option(
        "local", "--engine", help="local: this process; ray: Ray Data actors (JSONL or Parquet files)"
    ),
    address: str | None = typer.Option(
        None, "--address", help="--engine ray: join this Ray cluster (default: start a local Ray)"
    ),
    concurrency: int = typer.Option(1, "--concurrency", min=1, help="--engine ray: model replicas (actors)"),
    strict: bool = typer.Option(False, "--strict", help=STRICT_HELP),
) -> None:
    """Entities in TEXT, or in every row of a file (output rows gain "entities"). A bad row gets an
    "error" (file:line and why) instead of entities and the rest go on; the command then says how many
    failed and exits 1. --strict: check every row before the model loads and stop at the first bad
    one. With --engine ray: a JSONL or Parquet file through Ray Data (docs/scale-out.md)."""
    check_input_output(text, input_, output, engine, "FILE.jsonl")
    options = {
        "backend": backend,
        "device": device,
        "base": base,
        "dtype": dtype,
        "compile": compile_model,
        "max_length": max_length,
        "stride": stride,
        "batch_size": batch_size,
        "aggregation": aggregation,
        "o_threshold": o_threshold,
        "word_split": word_split,
        "threads": threads,
    }
    job = Job(
        "predict",
        model_or_adapter(model, adapter, base),
        input_,
        output,
        strict=strict,
        predictor_options={k: v for k, v in options.items() if v is not None},
    )
    if text is not None:
        record = run_text(job, text)
        typer.echo(json.dumps(record, ensure_ascii=False, indent=2))
        return
    run_file_job(job, engine, address=address, concurrency=concurrency)


def serve(
    model: str | None = typer.Option(
        None, "--model", "-m", help="Model directory or hub id OWNER/NAME[@REVISION] (or LORANER_MODEL)"
    ),
    base: str | None = typer.Option(
        None, "--base", help="Base model of LoRA adapters: path, hub id or pkg:MODULE (LORANER_BASE)"
    ),
    adapters: str | None = typer.Option(
        None, "--adapters", help="Folder of adapters, one per sub-folder, named after it (LORANER_ADAPTERS)"
    ),
    adapter: list[str] | None = typer.Option(
        None, "--adapter", help="NAME=PATH, repeatable (LORANER_ADAPTER)"
    ),
    default_adapter: str | None = typer.Option(None, "--default-adapter", help="For requests naming none"),
    max_loaded_adapters: int | None = typer.Option(
        None, "--max-loaded-adapters", help="Adapters kept in memory (LRU; default 16)"
    ),
    dtype: DType | None = typer.Option(
        None, "--dtype", help=f"{DTYPE_HELP} (LORANER_DTYPE, default {DEFAULT_DTYPE})"
    ),
    compile_model: bool | None = typer.Option(
        None, "--compile/--no-compile", help=f"{COMPILE_HELP} (LORANER_COMPILE, default off)"
    ),
    host: str | None = typer.Option(None, "--host", help="Bind address (LORANER_HOST, default 127.0.0.1)"),
    port: int | None = typer.Option(None, "--port", help="Port (LORANER_PORT, default 8000)"),
    backend: BackendName | None = typer.Option(None, "--backend", help="Runtime (LORANER_BACKEND)"),
    threads: int | None = typer.Option(None, "--threads", help="Runtime threads (LORANER_THREADS)"),
    concurrency: int | None = typer.Option(None, "--concurrency", help="Parallel inference calls"),
    microbatch_ms: float | None = typer.Option(None, "--microbatch-ms", help="Micro-batch window; 0 = off"),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Windows per forward pass"),
    max_batch_tokens: int | None = typer.Option(
        None, "--max-batch-tokens", help="Padded tokens per forward pass (LORANER_MAX_BATCH_TOKENS, 512)"
    ),
    stride: int | None = typer.Option(None, "--stride"),
    aggregation: Aggregation | None = typer.Option(
        None, "--aggregation", help="How a word's label is chosen"
    ),
    word_split: WordSplit | None = typer.Option(
        None, "--word-split", help="What a word is (default: as trained)"
    ),
    log_level: LogLevel | None = typer.Option(None, "--log-level"),
    api_keys: str | None = typer.Option(
        None,
        "--api-keys",
        help="Comma-separated API keys (LORANER_API_KEYS); visible in the process list: prefer "
        "--api-keys-file or the variable",
    ),
    api_keys_file: Path | None = typer.Option(
        None, "--api-keys-file", help="API keys, one per line, # comments (LORANER_API_KEYS_FILE)"
    ),
    protect_metrics: bool | None = typer.Option(
        None, "--protect-metrics/--no-protect-metrics", help="With API keys: /metrics needs one (default)"
    ),
    protect_demo: bool | None = typer.Option(
        None,
        "--protect-demo/--no-protect-demo",
        help="With API keys: /demo, /docs, /openapi.json need one (default: open; the page asks for a key)",
    ),
    cors_origins: str | None = typer.Option(
        None,
        "--cors-origins",
        help="Comma-separated origins whose pages may call the API, e.g. https://app.example.org "
        "(LORANER_CORS_ORIGINS; default none: no CORS headers)",
    ),
) -> None:
    """Serve the model over HTTP: /predict, /predict/batch, /demo, /docs, /metrics, /health, /ready.
    Every setting also reads LORANER_<NAME> from the environment; flags win. With API keys every route
    but /health and /ready needs Authorization: Bearer KEY (/metrics and the pages: see their flags)."""
    from loraner.serve.app import run_server  # the [serve] extra (fastapi, uvicorn)

    settings = ServeSettings.from_env(
        model=model,
        base=base,
        adapters=adapters,
        adapter=adapter or None,
        default_adapter=default_adapter,
        max_loaded_adapters=max_loaded_adapters,
        dtype=dtype,
        compile=compile_model,
        host=host,
        port=port,
        backend=backend,
        threads=threads,
        concurrency=concurrency,
        microbatch_ms=microbatch_ms,
        batch_size=batch_size,
        max_batch_tokens=max_batch_tokens,
        stride=stride,
        aggregation=aggregation,
        word_split=word_split,
        log_level=log_level,
        api_keys=api_keys,
        api_keys_file=api_keys_file,
        protect_metrics=protect_metrics,
        protect_demo=protect_demo,
        cors_origins=cors_origins,
    )
    if not settings.model and not settings.base:
        raise ConfigError("no model: pass --model DIR (or --base MODEL with adapters), or set LORANER_MODEL")
    if settings.model:
        settings = _with_local_model(settings)
    if settings.base and hub_id(settings.base):
        local_model_source(settings.base)  # download (or find in the cache) now: fail before serving
    if settings.adapters and not Path(settings.adapters).is_dir():
        raise ConfigError(f"{settings.adapters}: adapter folder not found")
    run_server(settings=settings)


def _with_local_model(settings: ServeSettings) -> ServeSettings:
    """A hub id as ``--model`` is downloaded before the server starts (a failure is one line, exit 1);
    responses name the model by its hub id unless ``LORANER_MODEL_NAME`` says otherwise."""
    assert settings.model is not None
    found = hub_id(settings.model)
    if found is None:
        if not Path(settings.model).is_dir():
            raise ConfigError(f"{settings.model}: model directory not found")
        return settings
    local = local_model_source(settings.model)
    name = settings.model_name or settings.model
    return settings.model_copy(update={"model": str(local), "model_name": name})


def export_onnx(
    model: Path = typer.Option(
        ..., "--model", "-m", help="Merged model directory, any HF checkpoint, or a hub id OWNER/NAME[@REV]"
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Directory for model.onnx and its companions"),
    quantize: Quantization | None = typer.Option(None, "--quantize", help="Dynamic weight quantization"),
    opset: int = typer.Option(17, "--opset"),
    sample: Path | None = typer.Option(None, "--sample", help='Held-out JSONL ({"text"}) for the checks'),
    atol: float = typer.Option(1e-3, "--atol", help="Max |logit diff| allowed for fp32"),
    int8_floor: float = typer.Option(0.9, "--int8-floor", help="Min entity agreement of int8 with fp32"),
    per_channel: bool = typer.Option(True, "--per-channel/--no-per-channel", help="Per-channel int8 weights"),
    preprocess: bool = typer.Option(True, "--preprocess/--no-preprocess", help="ORT pre-quantization pass"),
    threads: int | None = typer.Option(None, "--threads"),
) -> None:
    """Export to ONNX (optionally int8) and check it against the source model; writes export_report.json."""
    from loraner.export.onnx import export_onnx as run_export  # torch and onnx: the [train]/[onnx] extras

    texts = read_texts(sample) if sample else None
    report = run_export(
        model,
        output,
        quantize=quantize,
        opset=opset,
        sample_texts=texts,
        atol=atol,
        int8_floor=int8_floor,
        per_channel=per_channel,
        preprocess=preprocess,
        threads=threads,
    )
    typer.echo(
        f"fp32 parity: max |logit diff| {report.fp32_max_abs_diff:.2e} (atol {atol:.0e}), "
        f"token agreement {report.fp32_token_agreement:.4f} over {report.windows} windows"
    )
    if report.int8:
        typer.echo(
            f"int8: entity agreement {report.int8['entity_agreement']:.4f} (floor {int8_floor}), "
            f"{report.int8['size_mb_fp32']} MB -> {report.int8['size_mb_int8']} MB"
        )
    typer.echo(f"written: {output / 'model.onnx'} and export_report.json")
