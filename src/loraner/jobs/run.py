"""Batch jobs in this process: the documents of a file through a task in chunks, one output record per
row, in input order.

    from loraner.jobs import Job, run_job
    summary = run_job(Job("predict", "export/onnx", Path("notes.jsonl"), Path("entities.jsonl")))

A bad row (see :mod:`loraner.jobs.documents`) or a document the model fails on becomes a record with
``"error"`` and the job goes on; :class:`JobSummary` counts them. With ``strict`` the input is checked
before the model loads and the first bad row stops the job (:class:`~loraner.errors.DataError`), with
nothing written after the rows before it. ``loraner.jobs.ray`` runs the same job on Ray.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import IO, Any, TypeVar

from tqdm import tqdm

from loraner.data.jsonl import jsonl_line
from loraner.data.labelstudio import LabelNames
from loraner.deid import DeidConfig, resolve_secret
from loraner.errors import DataError
from loraner.inference import NERPredictor
from loraner.jobs.documents import Document, check_documents, read_documents
from loraner.jobs.tasks import OutputFormat, Task, TaskName, make_task

# Documents per model call (and per Ray actor call): enough for length-sorted batching to pay off.
CHUNK_ROWS = 256
T = TypeVar("T")


@dataclass(frozen=True)
class Job:
    """Every document of ``source`` through ``task`` with the model at ``model`` (loaded with
    ``predictor_options``: the keyword arguments of ``NERPredictor.from_pretrained``), one record per
    row to ``target`` (None: standard output). ``deid_config`` and ``include_original`` are the
    ``deid`` task's; ``output_format`` and ``label_names`` the ``predict`` task's (Label Studio tasks for
    that control: rows that fail get no task, the summary counts them)."""

    task: TaskName
    model: str | Path
    source: Path | None = None
    target: Path | None = None
    strict: bool = False
    predictor_options: dict[str, Any] = field(default_factory=dict)
    deid_config: DeidConfig | None = None
    include_original: bool = False
    output_format: OutputFormat = "entities"
    label_names: LabelNames | None = None

    @property
    def keys(self) -> bool:
        """Whether rows may carry a ``"document_key"`` (de-identification)."""
        return self.task == "deid"


@dataclass(frozen=True)
class JobSummary:
    """Rows written, how many of them failed, and the first failure (where and why)."""

    rows: int
    failed: int = 0
    first_error: str | None = None


def load_task(job: Job) -> Task:
    """The job's model, loaded once, in its task. A de-identification secret that is missing fails
    first: it should not cost a model load."""
    if job.deid_config is not None:
        resolve_secret(job.deid_config)
    predictor = NERPredictor.from_pretrained(job.model, **job.predictor_options)
    return make_task(
        job.task,
        predictor,
        deid_config=job.deid_config,
        include_original=job.include_original,
        output_format=job.output_format,
        label_names=job.label_names,
    )


def run_text(job: Job, text: str) -> dict[str, Any]:
    """One text through the job's task: the record a file's row would get, without an ``id``."""
    task = load_task(job)
    document = Document({"text": text}, text)
    record = task.output(document, task.run([document])[0])
    record.pop("id", None)
    return record


def run_job(job: Job, progress: IO[str] | None = None) -> JobSummary:
    """Run ``job`` in this process; ``progress``: a stream for a progress bar (shown on a terminal)."""
    if job.source is None:
        raise ValueError("a batch job needs a source file")
    total = check_documents(job.source, keys=job.keys, strict=job.strict)  # before the model loads
    task = load_task(job)
    documents = read_documents(job.source, keys=job.keys)
    bar = tqdm(total=total, unit=task.unit, desc=task.name, file=progress, disable=None if progress else True)
    with bar, open_target(job.target) as sink:
        return write_lines(_lines(task, documents, bar.update), sink, strict=job.strict)


def _lines(
    task: Task, documents: Iterable[Document], advance: Any
) -> Iterator[tuple[str | None, str | None]]:
    for chunk in chunks(documents, CHUNK_ROWS):
        for outcome in task.process(chunk):
            yield output_line(task, outcome), outcome.error
        advance(len(chunk))


def output_line(task: Task, outcome: Any) -> str | None:
    """The JSON line of a row's record, None where the task writes no record for it."""
    record = task.record(outcome)
    return jsonl_line(record) if record is not None else None


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


@contextmanager
def open_target(target: Path | None) -> Iterator[IO[str]]:
    """``target`` for writing (its folder made), or standard output."""
    if target is None:
        yield sys.stdout
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8") as sink:
        yield sink


def write_lines(
    lines: Iterable[tuple[str | None, str | None]], sink: IO[str], *, strict: bool = False
) -> JobSummary:
    """Write ``(output line or None, error or None)`` pairs in order and count the rows; with ``strict``
    the first error is raised instead, after the lines before it. Both engines write through here."""
    rows = failed = 0
    first_error = None
    for line, error in lines:
        if error is not None:
            if strict:
                raise DataError(error)
            failed += 1
            first_error = first_error or error
        if line is not None:
            sink.write(line)
        rows += 1
    return JobSummary(rows, failed, first_error)
