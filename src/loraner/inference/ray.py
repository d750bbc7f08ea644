"""Batch inference on Ray (``loraner predict --engine ray``, ``loraner deid --engine ray``).

Ray Data reads the input (JSONL or Parquet), an actor per model replica loads the model once and maps
batches of rows, and the driver writes the output in input order: one output row per input row, the
input's fields (its ``id`` among them) kept. A row that cannot be processed (not JSON, no ``"text"``
string, a null text in Parquet, a model failure) gets an ``error`` and no result; it is never dropped and
never fails the job.

``ray`` is an optional dependency (the ``[ray]`` extra): it is imported only inside the functions that
run a job, so this module imports without it and the actor class can be unit-tested on its own.

    from loraner.inference.ray import RayJob, run_ray_job
    run_ray_job(RayJob(task="predict", model_dir="export/onnx", source=Path("notes.jsonl"),
                       target=Path("entities.jsonl"), concurrency=4))
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any, Literal

from loraner.deid import DeidConfig, DeidPipeline
from loraner.errors import ConfigError
from loraner.inference.predictor import NERPredictor

Task = Literal["predict", "deid"]
FileFormat = Literal["jsonl", "parquet"]
BatchKind = Literal["rows", "jsonl", "parquet"]
FORMATS: dict[str, FileFormat] = {".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
ERROR = "error"
BLANK = "__blank__"  # JSONL mode: the line was blank (skipped, as without Ray)
NEEDS_ID = "__needs_id__"  # JSONL deid: the record had no id, the driver gives it the line number
LINE = "__line__"  # JSONL mode: the output record, as JSON


def file_format(path: Path) -> FileFormat:
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise ConfigError(f"{path}: --engine ray reads and writes .jsonl or .parquet files") from None


def entity_dicts(predictor: Any, texts: list[str]) -> list[list[dict[str, object]]]:
    """The pure batch function: texts -> entity dicts, one list per text."""
    return [[e.to_dict() for e in ents] for ents in predictor.predict_batch(texts)]


def _results(run: Any, items: list[Any]) -> list[tuple[Any, str | None]]:
    """``run(items)`` as (result, error) pairs: one call for the batch; if it fails, one call per item,
    so a failing item is marked alone. Errors name the exception type, never the text."""
    try:
        return [(r, None) for r in run(items)]
    except Exception:
        pairs: list[tuple[Any, str | None]] = []
        for item in items:
            try:
                pairs.append((run([item])[0], None))
            except Exception as exc:
                pairs.append((None, f"inference failed ({type(exc).__name__})"))
        return pairs


@dataclass
class Row:
    """One input row on its way through the actor."""

    record: dict[str, Any] | None = None  # the parsed input (JSONL) or the row's columns (Parquet)
    text: str | None = None
    key: str | None = None
    error: str | None = None
    blank: bool = False
    result: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def parse_line(line: str) -> Row:
    """A JSONL line as a row; the checks and messages of ``loraner predict``/``deid`` without Ray."""
    if not line.strip():
        return Row(blank=True)
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        return Row(error=f"not valid JSON ({exc.msg})")
    if not isinstance(record, dict):
        return Row(error='expected an object with a "text" string')
    return check_record(record)


def check_record(record: dict[str, Any]) -> Row:
    text = record.get("text")
    if not isinstance(text, str):
        return Row(record=record, error='expected an object with a "text" string')
    key = record.get("document_key")
    if key is not None and not isinstance(key, str):
        return Row(record=record, error='"document_key" must be a string')
    return Row(record=record, text=text, key=key)


class RayNERPredictor:
    """The Ray Data actor: ``Dataset.map_batches(RayNERPredictor, fn_constructor_kwargs={...})``.

    ``__init__`` loads the model once per actor (ONNX or torch, per ``backend``); ``__call__`` maps a
    batch. ``fmt="rows"`` (for your own pipelines, e.g. after ``ray.data.read_json``): a batch of columns
    (dict, pandas DataFrame or pyarrow Table) comes back as the same kind with ``entities`` (predict) or
    with ``text`` de-identified and ``items`` (deid), and ``error``. ``fmt="parquet"``: the same on
    pyarrow batches, typed for Parquet. ``fmt="jsonl"``: the batch's ``text`` column holds raw lines
    (``read_text``) and the result has one JSON line per row.
    """

    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        task: Task = "predict",
        fmt: BatchKind = "rows",
        deid_config: dict[str, Any] | None = None,
        include_original: bool = False,
        predictor: Any = None,
        **predictor_kwargs: Any,
    ) -> None:
        if predictor is None and model_dir is None:
            raise ValueError("give model_dir or predictor")
        self.predictor = predictor or NERPredictor.from_pretrained(model_dir, **predictor_kwargs)  # type: ignore[arg-type]
        self.task = task
        self.fmt = fmt
        self.include_original = include_original
        self.pipeline = None
        if task == "deid":
            config = DeidConfig.model_validate(deid_config or {})
            self.pipeline = DeidPipeline(
                partial(self.predictor.predict_batch, o_threshold=config.o_threshold), config
            )

    def __call__(self, batch: Any) -> Any:
        if self.fmt == "rows" and type(batch).__module__.split(".")[0] != "pyarrow":
            return self._map_columns(batch)
        import pyarrow as pa  # a dependency of ray[data]

        table = batch if isinstance(batch, pa.Table) else pa.Table.from_pydict(dict(batch))
        if self.fmt == "jsonl":
            rows = [parse_line(line or "") for line in table.column("text").to_pylist()]
        else:
            rows = [check_record(record) for record in table.to_pylist()]
        self._run(rows)
        if self.fmt == "jsonl":
            return pa.table(
                {
                    LINE: [self._json_line(row) for row in rows],
                    BLANK: [row.blank for row in rows],
                    NEEDS_ID: [self.task == "deid" and "id" not in (row.record or {}) for row in rows],
                    ERROR: [row.error for row in rows],
                }
            )
        return self._parquet_table(table, rows)

    def _map_columns(self, batch: Any) -> Any:
        """A dict of columns or a pandas DataFrame, with the results as new (or replaced) columns."""
        frame = hasattr(batch, "assign") and hasattr(batch, "to_dict")
        columns = batch.to_dict("list") if frame else dict(batch)
        size = len(columns["text"]) if "text" in columns else 0
        rows = [check_record({k: v[i] for k, v in columns.items()}) for i in range(size)]
        self._run(rows)
        added: dict[str, list[Any]] = {}
        if self.task == "predict":
            added["entities"] = [None if r.error else [e.to_dict() for e in r.result] for r in rows]
        else:
            added["text"] = [None if r.error else r.result.result.text for r in rows]
            added["items"] = [None if r.error else [i.to_dict() for i in r.result.result.items] for r in rows]
        added[ERROR] = [row.error for row in rows]
        if frame:
            return batch.assign(**added)
        return {**dict(batch), **added}

    def _run(self, rows: list[Row]) -> None:
        todo = [row for row in rows if row.error is None and not row.blank]
        if not todo:
            return
        if self.pipeline is None:
            results = _results(self.predictor.predict_batch, [row.text for row in todo])
        else:
            pipeline = self.pipeline

            def run(items: list[Row]) -> list[Any]:
                return pipeline.run_batch([r.text for r in items], [r.key for r in items])

            results = _results(run, todo)
        for row, (result, error) in zip(todo, results, strict=True):
            row.result, row.error = result, error

    def _json_line(self, row: Row) -> str:
        """The output record, as ``loraner predict``/``deid`` without Ray writes it (error rows: the
        record's own fields, if any, and ``error``)."""
        if row.blank:
            return ""
        record = row.record or {}
        if self.task == "predict":
            if row.error is not None:
                out = {**record, "entities": None, ERROR: row.error}
            else:
                out = {**record, "entities": [e.to_dict() for e in row.result]}
        else:
            out = {"id": record.get("id")}
            if row.error is not None:
                out.update({"text": None, "items": None, ERROR: row.error})
            else:
                out.update(row.result.result.to_dict())
                if self.include_original:
                    out["original"] = row.text
        return json.dumps(out, ensure_ascii=False)

    def _parquet_table(self, table: Any, rows: list[Row]) -> Any:
        import pyarrow as pa

        errors = pa.array([row.error for row in rows], pa.string())
        if self.task == "predict":
            entities = [None if r.error else [e.to_dict() for e in r.result] for r in rows]
            table = table.append_column("entities", pa.array(entities, entity_type()))
        else:
            texts = [None if r.error else r.result.result.text for r in rows]
            items = [None if r.error else [i.to_dict() for i in r.result.result.items] for r in rows]
            if self.include_original:
                table = table.append_column("original", pa.array([r.text for r in rows], pa.string()))
            table = table.set_column(
                table.schema.get_field_index("text"), "text", pa.array(texts, pa.string())
            )
            table = table.append_column("items", pa.array(items, item_type()))
        if ERROR in table.column_names:
            table = table.drop_columns([ERROR])
        return table.append_column(ERROR, errors)


def entity_type() -> Any:
    """The Arrow type of the ``entities`` column (built when needed: pyarrow comes with the extra)."""
    import pyarrow as pa

    return pa.list_(
        pa.struct(
            [
                ("type", pa.string()),
                ("text", pa.string()),
                ("start", pa.int64()),
                ("end", pa.int64()),
                ("score", pa.float64()),
            ]
        )
    )


def item_type() -> Any:
    import pyarrow as pa

    ints = [(name, pa.int64()) for name in ("start", "end", "new_start", "new_end")]
    return pa.list_(
        pa.struct([("type", pa.string()), ("operator", pa.string()), *ints, ("replacement", pa.string())])
    )


@dataclass(frozen=True)
class RayJob:
    """What ``--engine ray`` runs: the model, the files, and how many replicas (``concurrency`` actors,
    each given ``threads`` CPUs and running the model with that many threads)."""

    task: Task
    model_dir: Path
    source: Path
    target: Path
    address: str | None = None
    concurrency: int = 1
    threads: int = 1
    rows_per_batch: int = 256
    predictor_kwargs: dict[str, Any] = field(default_factory=dict)
    deid_config: dict[str, Any] | None = None
    include_original: bool = False


@dataclass(frozen=True)
class RaySummary:
    rows: int
    errors: int


def run_ray_job(job: RayJob, progress: IO[str] | None = None) -> RaySummary:
    """Read ``job.source`` with Ray Data, map it through ``job.concurrency`` model actors, write
    ``job.target`` in input order. Joins the cluster at ``job.address`` or starts a local Ray (and
    stops it afterwards); a Ray already started in this process is used as it is."""
    import ray  # the [ray] extra: imported only when a Ray job runs

    fmt = file_format(job.source)
    out_fmt = file_format(job.target)
    if fmt != out_fmt:
        raise ConfigError(f"--output {job.target}: write {fmt} for {fmt} input")
    started = not ray.is_initialized()
    if started:
        ray.init(address=job.address, include_dashboard=False, log_to_driver=False)
    try:
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # output row i is input row i
        context.enable_progress_bars = progress is not None and progress.isatty()
        # Reading is light next to the model: read tasks take no CPU of their own, else with the actors
        # holding every core (--concurrency = cores) a read would wait for a CPU forever.
        light = {"num_cpus": 0}
        if fmt == "jsonl":
            # Lines, not JSON: a bad line becomes an error row instead of failing the read.
            dataset = ray.data.read_text(str(job.source), drop_empty_lines=False, ray_remote_args=light)
        else:
            dataset = ray.data.read_parquet(str(job.source), ray_remote_args=light)
            if "text" not in dataset.schema().names:
                raise ConfigError(f"{job.source}: no 'text' column")
        mapped = dataset.map_batches(
            RayNERPredictor,
            fn_constructor_kwargs={
                "model_dir": str(job.model_dir),
                "task": job.task,
                "fmt": fmt,
                "deid_config": job.deid_config,
                "include_original": job.include_original,
                "threads": job.threads,
                **job.predictor_kwargs,
            },
            batch_size=job.rows_per_batch,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=job.concurrency),
            num_cpus=job.threads,
        )
        batches = mapped.iter_batches(batch_format="pyarrow", batch_size=None)
        job.target.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "jsonl":
            return write_jsonl(batches, job.target)
        return write_parquet(batches, job.target)
    finally:
        if started:
            ray.shutdown()


def json_lines(batches: Iterable[Any]) -> Iterator[tuple[str, bool]]:
    """(output line, is an error) per non-blank input line: line numbers as in the input file."""
    number = 0
    for batch in batches:
        columns = batch.to_pydict()
        for line, blank, needs_id, error in zip(
            columns[LINE], columns[BLANK], columns[NEEDS_ID], columns[ERROR], strict=True
        ):
            number += 1
            if blank:
                continue
            if needs_id or error is not None:
                record = json.loads(line)
                if needs_id:
                    record["id"] = number
                if error is not None:
                    record[ERROR] = f"line {number}: {error}"
                line = json.dumps(record, ensure_ascii=False)
            yield line, error is not None


def write_jsonl(batches: Iterable[Any], target: Path) -> RaySummary:
    rows = errors = 0
    with target.open("w", encoding="utf-8") as sink:
        for line, failed in json_lines(batches):
            sink.write(line + "\n")
            rows += 1
            errors += failed
    return RaySummary(rows, errors)


def write_parquet(batches: Iterable[Any], target: Path) -> RaySummary:
    import pyarrow.parquet as pq

    rows = errors = 0
    writer = None
    try:
        for batch in batches:
            if writer is None:
                writer = pq.ParquetWriter(str(target), batch.schema)
            writer.write_table(batch.cast(writer.schema))
            rows += batch.num_rows
            errors += batch.num_rows - batch.column(ERROR).null_count
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise ConfigError(f"{target}: the input has no rows")
    return RaySummary(rows, errors)


def log_summary(summary: RaySummary, target: Path, stream: IO[str] = sys.stderr) -> None:
    stream.write(f"wrote {summary.rows} rows to {target} ({summary.errors} with an error)\n")
