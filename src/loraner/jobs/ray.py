"""Batch jobs on Ray (``loraner predict --engine ray``, ``loraner deid --engine ray``).

Ray Data reads the input (JSONL or Parquet), an actor per model replica loads the model once and maps
batches of rows through the job's task (:mod:`loraner.jobs.tasks`, as in this process), and the driver
writes the output in input order: one output row per input row, the input's fields (its ``id`` among
them) kept. A row that cannot be processed gets an ``error`` naming it (JSONL: ``file:line``; Parquet:
``file: row N``, counted from 1) and no result, as :func:`loraner.jobs.run_job` writes it; with
``strict`` the first one stops the job.

``ray`` is an optional dependency (the ``[ray]`` extra): it is imported only inside the functions that
run a job, so this module imports without it and the actor class can be unit-tested on its own.

    from loraner.jobs import Job
    from loraner.jobs.ray import RayOptions, run_ray_job
    job = Job("predict", "export/onnx", Path("notes.jsonl"), Path("entities.jsonl"))
    run_ray_job(job, RayOptions(concurrency=4))
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from loraner.data.labelstudio import LabelNames
from loraner.deid import DeidConfig, resolve_secret
from loraner.errors import ConfigError, DataError
from loraner.inference.predictor import NERPredictor
from loraner.jobs.documents import Document, check_documents, from_record, parse_line
from loraner.jobs.run import CHUNK_ROWS, Job, JobSummary, output_line, write_lines
from loraner.jobs.tasks import ERROR, OutputFormat, TaskName, make_task

FileFormat = Literal["jsonl", "parquet"]
BatchKind = Literal["rows", "jsonl", "parquet"]
FORMATS: dict[str, FileFormat] = {".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
LINE = "line"  # JSONL source: the line number
RAW = "raw"  # JSONL source: the line's bytes
JSON = "json"  # JSONL result: the output record as one JSON line (null for a blank line)


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide a job runs: join the cluster at ``address`` (None: start a local Ray), with
    ``concurrency`` model replicas (actors), each given ``threads`` CPUs and running the model with that
    many threads, mapping ``rows_per_batch`` rows a call."""

    address: str | None = None
    concurrency: int = 1
    threads: int = 1
    rows_per_batch: int = CHUNK_ROWS


def file_format(path: Path) -> FileFormat:
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise ConfigError(f"{path}: --engine ray reads and writes .jsonl or .parquet files") from None


class RayNERPredictor:
    """The Ray Data actor: ``Dataset.map_batches(RayNERPredictor, fn_constructor_kwargs={...})``.

    ``__init__`` loads the model once per actor (ONNX or torch, per ``backend``); ``__call__`` maps a
    batch. ``fmt="rows"`` (for your own pipelines, e.g. after ``ray.data.read_json``): a batch of columns
    (dict, pandas DataFrame or pyarrow Table) comes back as the same kind with ``entities`` (predict) or
    with ``text`` de-identified and ``items`` (deid), and ``error``. ``fmt="parquet"``: the same on
    pyarrow batches, typed for Parquet. ``fmt="jsonl"``: a batch of numbered raw lines of the file
    ``source`` (:func:`jsonl_source`) comes back as one output JSON line per line.
    """

    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        task: TaskName = "predict",
        fmt: BatchKind = "rows",
        source: str = "",
        deid_config: DeidConfig | dict[str, Any] | None = None,
        include_original: bool = False,
        output_format: OutputFormat = "entities",
        label_names: LabelNames | None = None,
        predictor: Any = None,
        **predictor_kwargs: Any,
    ) -> None:
        if predictor is None and model_dir is None:
            raise ValueError("give model_dir or predictor")
        predictor = predictor or NERPredictor.from_pretrained(model_dir, **predictor_kwargs)  # type: ignore[arg-type]
        if isinstance(deid_config, dict):
            deid_config = DeidConfig.model_validate(deid_config)
        self.task = make_task(
            task,
            predictor,
            deid_config=deid_config,
            include_original=include_original,
            output_format=output_format,
            label_names=label_names,
        )
        self.fmt = fmt
        self.source = source

    def __call__(self, batch: Any) -> Any:
        if self.fmt == "rows" and type(batch).__module__.split(".")[0] != "pyarrow":
            return self._map_columns(batch)
        import pyarrow as pa  # a dependency of ray[data]

        table = batch if isinstance(batch, pa.Table) else pa.Table.from_pydict(dict(batch))
        if self.fmt == "jsonl":
            return self._map_lines(table)
        outcomes = self.task.process(self._documents(table.to_pylist()))
        return _with_columns(table, self.task.column_values(outcomes))

    def _documents(self, records: list[dict[str, Any]]) -> list[Document]:
        return [from_record(record, keys=self.task.keys) for record in records]

    def _map_lines(self, table: Any) -> Any:
        import pyarrow as pa

        numbers, raws = table.column(LINE).to_pylist(), table.column(RAW).to_pylist()
        parsed = [
            parse_line(raw, n, self.source, keys=self.task.keys) for n, raw in zip(numbers, raws, strict=True)
        ]
        outcomes = iter(self.task.process([d for d in parsed if d is not None]))
        lines: list[str | None] = []
        errors: list[str | None] = []
        for document in parsed:
            outcome = next(outcomes) if document is not None else None
            lines.append(output_line(self.task, outcome) if outcome else None)
            errors.append(outcome.error if outcome else None)
        return pa.table({JSON: pa.array(lines, pa.string()), ERROR: pa.array(errors, pa.string())})

    def _map_columns(self, batch: Any) -> Any:
        """A dict of columns or a pandas DataFrame, with the results as new (or replaced) columns."""
        frame = hasattr(batch, "assign") and hasattr(batch, "to_dict")
        columns = batch.to_dict("list") if frame else dict(batch)
        size = len(next(iter(columns.values()))) if columns else 0
        records = [{k: v[i] for k, v in columns.items()} for i in range(size)]
        added = self.task.column_values(self.task.process(self._documents(records)))
        if frame:
            return batch.assign(**added)
        return {**dict(batch), **added}


def _with_columns(table: Any, values: dict[str, list[Any]]) -> Any:
    """``table`` with each of ``values`` replacing the column of its name or appended, typed for Parquet."""
    import pyarrow as pa

    for name, column in values.items():
        array = pa.array(column, arrow_type(name))
        at = table.schema.get_field_index(name)
        table = table.set_column(at, name, array) if at >= 0 else table.append_column(name, array)
    return table


def arrow_type(column: str) -> Any:
    """The Arrow type of an output column (built when needed: pyarrow comes with the extra)."""
    import pyarrow as pa

    if column == "entities":
        fields = [("type", pa.string()), ("text", pa.string()), ("start", pa.int64()), ("end", pa.int64())]
        return pa.list_(pa.struct([*fields, ("score", pa.float64())]))
    if column == "items":
        ints = [(name, pa.int64()) for name in ("start", "end", "new_start", "new_end")]
        return pa.list_(
            pa.struct([("type", pa.string()), ("operator", pa.string()), *ints, ("replacement", pa.string())])
        )
    return pa.string()


def jsonl_source(path: Path) -> Any:
    """A Ray Data source of the lines of a JSONL file, numbered, as bytes: split at ``"\\n"`` only and
    not decoded, as :func:`loraner.jobs.read_documents` reads them (``read_text`` would also split at
    U+2028 inside a JSON string, and fail the whole read on one line that is not UTF-8)."""
    import pyarrow as pa
    from ray.data.datasource import FileBasedDatasource

    class JsonlLines(FileBasedDatasource):  # type: ignore[misc]
        def _read_stream(self, f: Any, path: str) -> Iterator[Any]:
            lines = f.readall().split(b"\n")
            numbers = pa.array(range(1, len(lines) + 1), pa.int64())
            yield pa.table({LINE: numbers, RAW: pa.array(lines, pa.binary())})

    return JsonlLines(str(path))


def run_ray_job(job: Job, options: RayOptions | None = None, progress: IO[str] | None = None) -> JobSummary:
    """Read ``job.source`` with Ray Data, map it through ``options.concurrency`` model actors, write
    ``job.target`` in input order. Joins the cluster at ``options.address`` or starts a local Ray (and
    stops it afterwards); a Ray already started in this process is used as it is."""
    import ray  # the [ray] extra: imported only when a Ray job runs

    options = options or RayOptions()
    if job.source is None or job.target is None:
        raise ConfigError("a Ray job reads a source file and writes a target file (.jsonl or .parquet)")
    fmt = file_format(job.source)
    if file_format(job.target) != fmt:
        raise ConfigError(f"--output {job.target}: write {fmt} for {fmt} input")
    if job.output_format != "entities" and fmt != "jsonl":
        raise ConfigError(f"--output-format {job.output_format}: write JSONL (Label Studio imports it)")
    if job.deid_config is not None:
        resolve_secret(job.deid_config)  # here, before any actor starts: a missing secret is one clear line
    if job.strict and fmt == "parquet":  # on the driver, before any actor loads the model
        check_parquet(job.source, keys=job.keys)
    elif job.strict:
        check_documents(job.source, keys=job.keys, strict=True)
    started = not ray.is_initialized()
    if started:
        ray.init(address=options.address, include_dashboard=False, log_to_driver=False)
    try:
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # output row i is input row i
        context.enable_progress_bars = progress is not None and progress.isatty()
        # Reading is light next to the model: read tasks take no CPU of their own, else with the actors
        # holding every core (--concurrency = cores) a read would wait for a CPU forever.
        light = {"num_cpus": 0}
        if fmt == "jsonl":
            dataset = ray.data.read_datasource(jsonl_source(job.source), ray_remote_args=light)
        else:
            dataset = ray.data.read_parquet(str(job.source), ray_remote_args=light)
            if "text" not in dataset.schema().names:
                raise ConfigError(f"{job.source}: no 'text' column")
        mapped = dataset.map_batches(
            RayNERPredictor,
            fn_constructor_kwargs={
                "model_dir": str(job.model),
                "task": job.task,
                "fmt": fmt,
                "source": str(job.source),
                "deid_config": job.deid_config,
                "include_original": job.include_original,
                "output_format": job.output_format,
                "label_names": job.label_names,
                "threads": options.threads,
                **job.predictor_options,
            },
            batch_size=options.rows_per_batch,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=options.concurrency),
            num_cpus=options.threads,
        )
        batches = mapped.iter_batches(batch_format="pyarrow", batch_size=None)
        job.target.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "jsonl":
            with job.target.open("w", encoding="utf-8") as sink:
                return write_lines(result_lines(batches), sink, strict=job.strict)
        return write_parquet(batches, job.target, str(job.source), strict=job.strict)
    finally:
        if started:
            ray.shutdown()


def result_lines(batches: Iterable[Any]) -> Iterator[tuple[str | None, str | None]]:
    """(output line, error) per non-blank input line, in order (the line None where the task writes no
    record for a row that failed)."""
    for batch in batches:
        columns = batch.to_pydict()
        for line, error in zip(columns[JSON], columns[ERROR], strict=True):
            if line is not None or error is not None:
                yield line, error


def check_parquet(path: Path, *, keys: bool = False) -> int:
    """Every row of a Parquet file checked as :func:`~loraner.jobs.documents.from_record` checks a JSONL
    record; the first bad one is a :class:`DataError` naming it. Returns the row count."""
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    names = [name for name in ("text", "document_key") if name in parquet.schema_arrow.names]
    if "text" not in names:
        raise ConfigError(f"{path}: no 'text' column")
    rows = 0
    for batch in parquet.iter_batches(columns=names):
        for record in batch.to_pylist():
            rows += 1
            document = from_record(record, keys=keys, where=parquet_row(path, rows))
            if document.error:
                raise DataError(document.error)
    return rows


def parquet_row(source: str | Path, number: int) -> str:
    return f"{source}: row {number}"


def write_parquet(batches: Iterable[Any], target: Path, source: str, *, strict: bool = False) -> JobSummary:
    """The mapped batches to ``target`` in order, each error given its row (``file: row N``); with
    ``strict`` the first error is raised instead, after the rows before it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = failed = 0
    first_error = None
    writer = None
    try:
        for batch in batches:
            errors = [
                None if e is None else f"{parquet_row(source, rows + i + 1)}: {e}"
                for i, e in enumerate(batch.column(ERROR).to_pylist())
            ]
            bad = [i for i, e in enumerate(errors) if e is not None]
            stop = errors[bad[0]] if strict and bad else None
            if stop:
                batch, errors = batch.slice(0, bad[0]), errors[: bad[0]]
            at = batch.schema.get_field_index(ERROR)
            batch = batch.set_column(at, ERROR, pa.array(errors, pa.string()))
            if writer is None:
                writer = pq.ParquetWriter(str(target), batch.schema)
            writer.write_table(batch.cast(writer.schema))
            if stop:
                raise DataError(stop)
            rows += batch.num_rows
            failed += len(bad)
            first_error = first_error or (errors[bad[0]] if bad else None)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise ConfigError(f"{target}: the input has no rows")
    return JobSummary(rows, failed, first_error)
