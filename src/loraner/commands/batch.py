"""What ``loraner predict`` and ``loraner deid`` share: the model they load, and a file through
:mod:`loraner.jobs` on the chosen engine, with the summary and exit code of a batch job."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import typer

from loraner.commands.options import Engine
from loraner.data.labelstudio import LabelNames, label_names
from loraner.errors import ConfigError, DataError
from loraner.jobs import Job, JobSummary, run_job
from loraner.jobs.tasks import TASKS


class RowsFailed(DataError):
    """Some rows of a batch job failed; the output holds them with ``"error"``."""


def check_input_output(
    text: str | None, input_: Path | None, output: Path | None, engine: Engine, what: str
) -> None:
    if (text is None) == (input_ is None):
        raise ConfigError(f"give either TEXT or --input {what}")
    if input_ is not None and output is not None and output.resolve() == input_.resolve():
        raise ConfigError("--output must differ from --input (it would be overwritten while read)")
    if engine == "ray" and (input_ is None or output is None):
        raise ConfigError("--engine ray needs --input FILE and --output FILE (.jsonl or .parquet)")


def read_label_config(path: Path) -> LabelNames:
    """The Labels control, Text object and labels of a Label Studio labelling config file (XML)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--label-config {path}: cannot read it ({exc})") from None
    try:
        return label_names(text)
    except ConfigError as exc:
        raise ConfigError(f"--label-config {path}: {exc}") from None


def run_file_job(job: Job, engine: Engine, *, address: str | None = None, concurrency: int = 1) -> None:
    """``job`` on ``engine`` (on Ray, the ``threads`` predictor option is each actor's CPUs and threads);
    "wrote N ..." on stderr, and exit 1 naming the first failure if any row failed (its record in the
    output has ``"error"``)."""
    if engine == "ray":
        from loraner.jobs.ray import RayOptions, run_ray_job  # ray itself is imported when the job runs

        if job.source is not None and not job.source.is_file():
            raise ConfigError(f"{job.source}: file not found")
        options = dict(job.predictor_options)
        ray = RayOptions(address=address, concurrency=concurrency, threads=options.pop("threads", None) or 1)
        summary = run_ray_job(replace(job, predictor_options=options), ray, progress=sys.stderr)
    else:
        summary = run_job(job, progress=sys.stderr)
    report(summary, job)


def report(summary: JobSummary, job: Job) -> None:
    unit = TASKS[job.task].unit
    if job.target is not None:
        typer.echo(f"wrote {summary.rows} {unit}s to {job.target}", err=True)
    if summary.failed:
        where = (
            "they have no task in the output"
            if job.output_format == "label-studio"
            else 'their rows have "error"'
        )
        raise RowsFailed(
            f"{summary.failed} of {summary.rows} {unit}s failed ({where}); the first: {summary.first_error}"
        )
