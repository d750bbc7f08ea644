"""Command-line options declared once: the ones several commands share, as ``Annotated`` types with their
help (defaults and the words for them come from :mod:`loraner.defaults`), and ``loraner serve``'s,
made from the :class:`~loraner.serve.settings.ServeSettings` fields marked with ``Flag``."""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from rich.markup import escape

from loraner import defaults
from loraner.data.words import WordSplit
from loraner.inference import Aggregation, BackendName
from loraner.inference.backends import DType
from loraner.jobs.tasks import OutputFormat
from loraner.serve.settings import Flag

F = TypeVar("F", bound=Callable[..., Any])
Engine = Literal["local", "ray"]


def cli_help(text: str) -> str:
    """A help text as the command line shows it: capitalised, and with brackets kept (Rich would read
    ``NAME[@REVISION]`` as markup and drop it)."""
    return escape(text[:1].upper() + text[1:])


# The model and how it runs.
ModelOption = Annotated[
    Path | None,
    typer.Option(
        "--model",
        "-m",
        help=cli_help("merged or exported model directory, or a hub id OWNER/NAME[@REVISION]"),
    ),
]
AdapterOption = Annotated[
    Path | None, typer.Option("--adapter", help="LoRA adapter directory or hub id (not with --model)")
]
BaseOption = Annotated[
    str | None,
    typer.Option(
        "--base", help="The adapter's base model: path, hub id or pkg:MODULE (default: as recorded)"
    ),
]
BackendOption = Annotated[BackendName, typer.Option("--backend", help=cli_help(defaults.BACKEND.help))]
DTypeOption = Annotated[
    DType, typer.Option("--dtype", help=cli_help(defaults.DTYPE.help), envvar="LORANER_DTYPE")
]
CompileOption = Annotated[
    bool, typer.Option("--compile", help=cli_help(defaults.COMPILE.help), envvar="LORANER_COMPILE")
]
DeviceOption = Annotated[str, typer.Option("--device", help="Torch device")]
ThreadsOption = Annotated[int | None, typer.Option("--threads", help=cli_help(defaults.THREADS.help))]
# The checks an export runs against its source model (export onnx, onnx-adapters, openvino).
OpsetOption = Annotated[int, typer.Option("--opset", help=cli_help(defaults.OPSET.help))]
SampleOption = Annotated[
    Path | None, typer.Option("--sample", help='Held-out JSONL ({"text"}) for the checks')
]
AtolOption = Annotated[float, typer.Option("--atol", help=cli_help(defaults.ATOL.help))]
Int8FloorOption = Annotated[float, typer.Option("--int8-floor", help=cli_help(defaults.INT8_FLOOR.help))]
PerChannelOption = Annotated[
    bool, typer.Option("--per-channel/--no-per-channel", help="Per-channel int8 weights")
]
PreprocessOption = Annotated[
    bool, typer.Option("--preprocess/--no-preprocess", help="ORT pre-quantization pass")
]
BatchSizeOption = Annotated[int, typer.Option("--batch-size", help=cli_help(defaults.BATCH_SIZE.help))]
MaxLengthOption = Annotated[int | None, typer.Option("--max-length", help=cli_help(defaults.MAX_LENGTH.help))]
StrideOption = Annotated[int | None, typer.Option("--stride", help=cli_help(defaults.STRIDE.help))]
AggregationOption = Annotated[
    Aggregation, typer.Option("--aggregation", help=cli_help(defaults.AGGREGATION.help))
]
OThresholdOption = Annotated[
    float | None, typer.Option("--o-threshold", help=cli_help(defaults.O_THRESHOLD.help))
]
WordSplitOption = Annotated[
    WordSplit | None, typer.Option("--word-split", help=cli_help(defaults.WORD_SPLIT.help))
]

# A batch job's files and engine (loraner.jobs).
InputOption = Annotated[
    Path | None,
    typer.Option(
        "--input",
        "-i",
        help='JSONL, one {"text", "id"?, "document_key"?} per line, or a .txt file (one document)',
    ),
]
OutputOption = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="JSONL output (Parquet for Parquet input on Ray; default: stdout)"),
]
EngineOption = Annotated[
    Engine,
    typer.Option("--engine", help="local: this process; ray: Ray Data actors (JSONL or Parquet files)"),
]
AddressOption = Annotated[
    str | None,
    typer.Option("--address", help="--engine ray: join this Ray cluster (default: start a local Ray)"),
]
ConcurrencyOption = Annotated[
    int, typer.Option("--concurrency", min=1, help="--engine ray: model replicas (actors)")
]
OutputFormatOption = Annotated[
    OutputFormat,
    typer.Option(
        "--output-format",
        help='entities: each input record with "entities"; label-studio: Label Studio tasks with the '
        "model's prediction (import them as they are; rows that fail are left out and counted)",
    ),
]
LabelConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--label-config",
        help="label-studio: the project's labelling config (XML) naming its Labels control, Text object and "
        "labels (default: the NER template's names: label, text, $text; `loraner label-studio config`)",
    ),
]
StrictOption = Annotated[
    bool,
    typer.Option(
        "--strict",
        help="Check every row before the model loads and stop at the first bad one (exit 1, nothing "
        'written after it). Default: a bad row gets "error" (file:line and why) and the rest go on; '
        "exit 1 at the end",
    ),
]


def options_from_settings(settings: type[BaseModel], env_prefix: str) -> Callable[[F], F]:
    """Give a ``def command(**flags)`` one option per field of ``settings`` marked with ``Flag``,
    ``--field-name``, defaulting to None (unset: the variable, then the field's default, apply), with
    the field's description as help, followed by its variable and default."""

    def decorate(command: F) -> F:
        parameters = [
            _parameter(name, field, flag, env_prefix)
            for name, field in settings.model_fields.items()
            for flag in field.metadata
            if isinstance(flag, Flag)
        ]
        command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        return command

    return decorate


def _parameter(name: str, field: FieldInfo, flag: Flag, env_prefix: str) -> inspect.Parameter:
    kind = _option_type(field.annotation, flag.repeat)
    option = "--" + name.replace("_", "-")
    declared = [f"{option}/--no-{option[2:]}" if kind is bool else option]
    if flag.alias:
        declared.append(flag.alias)
    default = field.get_default(call_default_factory=True)
    where = f"{env_prefix}{name.upper()}"
    if default not in (None, [], ""):
        shown = ("on" if default else "off") if isinstance(default, bool) else default
        where += f", default {shown}"
    help_text = f"{cli_help(field.description or name)} ({where})"
    return inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        default=typer.Option(None, *declared, help=help_text, show_default=False),
        annotation=kind | None,
    )


def _option_type(annotation: Any, repeat: bool) -> Any:
    """The option's type for a field's: lists are one comma-separated string (as in the variable)
    unless repeated; optional types as they are (an unset option is None anyway)."""
    if get_origin(annotation) in (Union, types.UnionType):
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    if get_origin(annotation) is list:
        return list[str] if repeat else str
    return annotation
