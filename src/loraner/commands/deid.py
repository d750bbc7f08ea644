"""``loraner deid`` (de-identify a text or a file with a trained model) and the ``--deid`` part of
``loraner evaluate``: option parsing over :mod:`loraner.jobs` (the ``deid`` task) and
:func:`loraner.eval.deid.run_deid_evaluation`.

Output never contains the original text unless asked for (``--include-original``), and nothing here
prints note text or PHI: evaluation prints counts, the leak list goes to the local report only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import typer

from loraner import defaults
from loraner.commands import friendly_errors
from loraner.commands.batch import check_input_output, run_file_job
from loraner.commands.options import (
    AdapterOption,
    AddressOption,
    BackendOption,
    BaseOption,
    ConcurrencyOption,
    DTypeOption,
    EngineOption,
    InputOption,
    ModelOption,
    OutputOption,
    StrictOption,
    ThreadsOption,
)
from loraner.deid import DeidConfig, load_deid_config, with_overrides
from loraner.eval.deid import DEID_SUMMARY_HEADERS, deid_summary_rows, run_deid_evaluation
from loraner.eval.report import render_text_table
from loraner.jobs import Job, run_text
from loraner.modeldir import model_or_adapter
from loraner.settings import ExperimentConfig

RecognizerChoice = Literal["with", "without", "both"]
RECOGNIZER_CHOICES: dict[str, bool | str] = {"with": True, "without": False, "both": "both"}


def register(app: typer.Typer) -> None:
    app.command("deid")(friendly_errors(deid))


def deid(
    text: str | None = typer.Argument(None, help="Text to de-identify (or use --input)"),
    model: ModelOption = None,
    adapter: AdapterOption = None,
    base: BaseOption = None,
    dtype: DTypeOption = defaults.DTYPE.value,
    input_: InputOption = None,
    output: OutputOption = None,
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        help="De-identification YAML, e.g. configs/deid.yaml (default: every type becomes [TYPE])",
    ),
    backend: BackendOption = defaults.BACKEND.value,
    recognizers: bool | None = typer.Option(
        None, "--recognizers/--no-recognizers", help="Pattern recognisers on/off (default: the config's)"
    ),
    o_threshold: float | None = typer.Option(
        None,
        "--o-threshold",
        help="O-label probability cut-off; higher = more recall (default: the config's)",
    ),
    include_original: bool = typer.Option(
        False, "--include-original", help='Also write the original text ("original"): sensitive'
    ),
    threads: ThreadsOption = None,
    engine: EngineOption = "local",
    address: AddressOption = None,
    concurrency: ConcurrencyOption = 1,
    strict: StrictOption = False,
) -> None:
    """De-identify TEXT, or every document of a file. Writes {"id", "text", "items"} per document:
    the de-identified text and one item per replaced span (type, operator, offsets, replacement). A bad
    row gets an "error" (file:line and why) and no text, and the rest go on; the command then says how
    many failed and exits 1 (--strict: stop at the first). With --engine ray: a JSONL or Parquet file
    through Ray Data."""
    check_input_output(text, input_, output, engine, "FILE (.jsonl or .txt)")
    model_dir = model_or_adapter(model, adapter, base)
    options = {"backend": backend, "base": base, "dtype": dtype, "threads": threads}
    job = Job(
        "deid",
        model_dir,
        input_,
        output,
        strict=strict,
        predictor_options={k: v for k, v in options.items() if v is not None},
        deid_config=load_config(config, o_threshold=o_threshold, recognizers=recognizers),
        include_original=include_original,
    )
    if text is not None:
        typer.echo(json.dumps(run_text(job, text), ensure_ascii=False, indent=2))
        return
    run_file_job(job, engine, address=address, concurrency=concurrency)


def load_config(
    path: Path | None, *, o_threshold: float | None = None, recognizers: bool | None = None
) -> DeidConfig:
    """The YAML at ``path`` (or the built-in defaults) with command-line overrides applied."""
    base = load_deid_config(path) if path is not None else DeidConfig()
    return with_overrides(base, o_threshold=o_threshold, recognizers=recognizers)


# --------------------------------------------------------------------------- loraner evaluate --deid


def evaluate_deid(
    model: Path,
    cfg: ExperimentConfig,
    split: str,
    config_path: Path | None,
    recognizers: RecognizerChoice,
    target: Path,
    **predictor_options: Any,
) -> dict[str, Any]:
    """Run the de-identification evaluation for ``loraner evaluate --deid``; print the score table (no
    text), write the local report beside ``target`` and return the scores for the JSON file."""

    mode = RECOGNIZER_CHOICES[recognizers]
    config = load_config(config_path)
    report = target.with_name(f"deid-report-{split}.md")
    result = run_deid_evaluation(model, cfg, split, config, mode, report=report, **predictor_options)
    typer.echo("\nDe-identification (entities: exact span and type; char recall: PHI characters changed)")
    typer.echo(render_text_table(DEID_SUMMARY_HEADERS, deid_summary_rows(result)))
    typer.echo(f"leak list and sample notes (contain PHI, keep local): {report}")
    return result
