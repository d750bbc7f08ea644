"""``loraner predict``, ``loraner serve`` and ``loraner export onnx|openvino|onnx-adapters``: option
parsing over library calls.

Torch, the ONNX exporter and the web server are imported inside the commands that need them, so
registering the commands costs little and the slim serving image (no torch) can run ``loraner serve``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from loraner import defaults
from loraner.commands import friendly_errors
from loraner.commands.batch import check_input_output, read_label_config, run_file_job
from loraner.commands.options import (
    AdapterOption,
    AddressOption,
    AggregationOption,
    AtolOption,
    BackendOption,
    BaseOption,
    BatchSizeOption,
    CompileOption,
    ConcurrencyOption,
    DeviceOption,
    DTypeOption,
    EngineOption,
    InputOption,
    Int8FloorOption,
    LabelConfigOption,
    MaxLengthOption,
    ModelOption,
    OpsetOption,
    OThresholdOption,
    OutputFormatOption,
    OutputOption,
    PerChannelOption,
    PreprocessOption,
    SampleOption,
    StrictOption,
    StrideOption,
    ThreadsOption,
    WordSplitOption,
    cli_help,
    options_from_settings,
)
from loraner.errors import ConfigError
from loraner.jobs import Job, read_texts, run_text
from loraner.modeldir import Quantization, hub_id, local_model_source, model_or_adapter
from loraner.serve.settings import ENV_PREFIX, ServeSettings


def register(app: typer.Typer) -> None:
    app.command("predict")(friendly_errors(predict))
    app.command("serve")(friendly_errors(serve))
    export_app = typer.Typer(help="Export models for serving.", no_args_is_help=True)
    export_app.command("onnx")(friendly_errors(export_onnx))
    export_app.command("openvino")(friendly_errors(export_openvino))
    export_app.command("onnx-adapters")(friendly_errors(export_onnx_adapters))
    app.add_typer(export_app, name="export")


def predict(
    text: str | None = typer.Argument(None, help="Text to analyse (or use --input)"),
    model: ModelOption = None,
    adapter: AdapterOption = None,
    base: BaseOption = None,
    dtype: DTypeOption = defaults.DTYPE.value,
    compile_model: CompileOption = defaults.COMPILE.value,
    input_: InputOption = None,
    output: OutputOption = None,
    backend: BackendOption = defaults.BACKEND.value,
    device: DeviceOption = defaults.DEVICE.value,
    threads: ThreadsOption = None,
    batch_size: BatchSizeOption = defaults.BATCH_SIZE.value,
    max_length: MaxLengthOption = None,
    stride: StrideOption = None,
    aggregation: AggregationOption = defaults.AGGREGATION.value,
    o_threshold: OThresholdOption = None,
    word_split: WordSplitOption = None,
    engine: EngineOption = "local",
    address: AddressOption = None,
    concurrency: ConcurrencyOption = 1,
    strict: StrictOption = False,
    output_format: OutputFormatOption = "entities",
    label_config: LabelConfigOption = None,
) -> None:
    """Entities in TEXT, or in every row of a file (output rows gain "entities"; with --output-format
    label-studio, Label Studio tasks with the model's prediction, docs/label-studio.md). A bad row gets an
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
        output_format=output_format,
        label_names=read_label_config(label_config) if label_config else None,
    )
    if text is not None:
        record = run_text(job, text)
        typer.echo(json.dumps(record, ensure_ascii=False, indent=2))
        return
    run_file_job(job, engine, address=address, concurrency=concurrency)


@options_from_settings(ServeSettings, ENV_PREFIX)
def serve(**flags: Any) -> None:
    """Serve the model over HTTP: /predict, /predict/batch, /demo, /docs, /metrics, /health, /ready.
    Every setting also reads LORANER_<NAME> from the environment; flags win. With API keys every route
    but /health and /ready needs Authorization: Bearer KEY (/metrics and the pages: see their flags)."""
    from loraner.serve.app import run_server  # the [serve] extra (fastapi, uvicorn)

    settings = ServeSettings.from_env(**flags)
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
        ...,
        "--model",
        "-m",
        help=cli_help("merged model directory, any HF checkpoint, or a hub id OWNER/NAME[@REV]"),
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Directory for model.onnx and its companions"),
    quantize: Quantization | None = typer.Option(None, "--quantize", help="Dynamic weight quantization"),
    opset: OpsetOption = defaults.OPSET.value,
    sample: SampleOption = None,
    atol: AtolOption = defaults.ATOL.value,
    int8_floor: Int8FloorOption = defaults.INT8_FLOOR.value,
    per_channel: PerChannelOption = True,
    preprocess: PreprocessOption = True,
    threads: ThreadsOption = None,
) -> None:
    """Export to ONNX (optionally int8) and check it against the source model; writes export_report.json."""
    from loraner.export.onnx import export_onnx as run_export  # torch and onnx: the [train]/[onnx] extras

    texts = read_texts(sample) if sample else None
    checks = dict(
        opset=opset, atol=atol, int8_floor=int8_floor, per_channel=per_channel, preprocess=preprocess
    )
    report = run_export(model, output, quantize=quantize, sample_texts=texts, threads=threads, **checks)
    echo_parity(report, atol, int8_floor)
    typer.echo(f"written: {output / 'model.onnx'} and export_report.json")


def echo_parity(report: Any, atol: float, int8_floor: float, sample: str = "") -> None:
    """An export's checks against its source, as both exports print them."""
    typer.echo(
        f"fp32 parity: max |logit diff| {report.fp32_max_abs_diff:.2e} (atol {atol:.0e}), "
        f"token agreement {report.fp32_token_agreement:.4f} over {report.windows} windows{sample}"
    )
    if report.int8:
        int8 = report.int8
        drop = f", F1 drop {int8['f1_drop_points']:.2f} points" if "f1_drop_points" in int8 else ""
        typer.echo(
            f"int8: entity agreement {int8['entity_agreement']:.4f} (floor {int8_floor}){drop}, "
            f"{int8['size_mb_fp32']} MB -> {int8['size_mb_int8']} MB"
        )


def export_onnx_adapters(
    base: str = typer.Option(
        ..., "--base", help="The adapters' base model: path, hub id OWNER/NAME[@REV] or pkg:MODULE"
    ),
    adapter: list[str] = typer.Option(
        [], "--adapter", help="An adapter as NAME=DIR (repeat the option for each adapter)"
    ),
    adapters: Path | None = typer.Option(
        None, "--adapters", help="A folder of adapters, one per sub-folder, named after it"
    ),
    output: Path = typer.Option(
        ..., "--output", "-o", help="Directory for lora_base.onnx, adapters/NAME/ and their companions"
    ),
    quantize: str = typer.Option(
        "int8",
        "--quantize",
        help="The base's linear layers: int8 (dynamic) or none (fp32); adapters stay fp32",
    ),
    opset: OpsetOption = defaults.OPSET.value,
    sample: SampleOption = None,
    atol: AtolOption = defaults.ATOL.value,
    int8_floor: Int8FloorOption = defaults.INT8_FLOOR.value,
    per_channel: PerChannelOption = True,
    preprocess: PreprocessOption = True,
    threads: ThreadsOption = None,
) -> None:
    """Export a base model and its LoRA adapters for ONNX Runtime: one base graph (int8) whose LoRA branches
    and head are inputs, each adapter as an .onnx_adapter; serve them without PyTorch with
    `loraner serve --base OUT --adapters OUT/adapters`. Each adapter is checked against PyTorch."""
    from loraner.export.onnx_adapters import export_onnx_adapters as run_export  # torch, peft, onnx
    from loraner.inference.adapters import named_adapters

    texts = read_texts(sample) if sample else None
    checks = dict(
        opset=opset, atol=atol, int8_floor=int8_floor, per_channel=per_channel, preprocess=preprocess
    )
    quantization = None if quantize == "none" else quantize
    sources = named_adapters(adapters, adapter)
    report = run_export(
        base, sources, output, quantize=quantization, sample_texts=texts, threads=threads, **checks
    )
    for name, checks in report.adapters.items():
        int8 = checks.get("int8")
        agreement = f", int8 entity agreement {int8['entity_agreement']:.4f}" if int8 else ""
        typer.echo(
            f"{name}: {checks['layers']} LoRA layers; fp32 max |logit diff| "
            f"{checks['fp32_max_abs_diff']:.2e} (atol {atol:.0e}){agreement}"
        )
    typer.echo(
        f"written: {output / 'lora_base.onnx'} ({report.size_mb} MB, {report.layers} LoRA layers), "
        f"{output / 'adapters'}/NAME, export_report.json; serve: loraner serve --base {output} "
        f"--adapters {output / 'adapters'}"
    )


def export_openvino(
    model: Path = typer.Option(
        ...,
        "--model",
        "-m",
        help=cli_help("merged model directory (a run directory: its merged/), or any HF checkpoint"),
    ),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="Directory for openvino/ and its companions (default: into --model's directory itself)",
    ),
    quantize: Quantization | None = typer.Option(
        None, "--quantize", help="NNCF static int8, calibrated on --calibration or the validation split"
    ),
    calibration: Path | None = typer.Option(
        None,
        "--calibration",
        help='JSONL ({"text"}) to calibrate int8 on and check it against fp32 '
        "(default: the model's validation split, with its gold F1 check)",
    ),
    calibration_size: int = typer.Option(
        defaults.CALIBRATION_SIZE.value, "--calibration-size", help=cli_help(defaults.CALIBRATION_SIZE.help)
    ),
    atol: AtolOption = defaults.ATOL.value,
    int8_floor: Int8FloorOption = defaults.INT8_FLOOR.value,
    max_f1_drop: float = typer.Option(
        defaults.INT8_MAX_F1_DROP.value, "--max-f1-drop", help=cli_help(defaults.INT8_MAX_F1_DROP.help)
    ),
    threads: ThreadsOption = None,
) -> None:
    """Export to an OpenVINO IR (optionally static int8) and check it against the source model, as the ONNX
    export does; writes openvino/model.xml, model.bin and export_report.json."""
    from loraner.export.openvino import export_openvino as run_export  # torch, openvino, nncf

    report = run_export(
        model,
        output,
        quantize=quantize,
        calibration_texts=read_texts(calibration) if calibration else None,
        calibration_source=str(calibration) if calibration else "texts given",
        calibration_size=calibration_size,
        atol=atol,
        int8_floor=int8_floor,
        max_f1_drop=max_f1_drop,
        threads=threads,
    )
    echo_parity(report, atol, int8_floor, f" ({report.sample_texts} texts: {report.calibration})")
    typer.echo(f"written: {Path(report.output_dir) / 'openvino'} (model.xml, model.bin, export_report.json)")
