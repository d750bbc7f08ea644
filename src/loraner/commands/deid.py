"""``loraner deid`` (de-identify a text or a file with a trained model) and the ``--deid`` part of
``loraner evaluate``: option parsing over :class:`loraner.deid.DeidPipeline` and
:func:`loraner.pipeline.run_deid_evaluation`.

Output never contains the original text unless asked for (``--include-original``), and nothing here
prints note text or PHI: evaluation prints counts, the leak list goes to the local report only.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any, Literal

import typer
from tqdm import tqdm

from loraner.commands import friendly_errors
from loraner.commands.inference import CHUNK_LINES, Engine, read_jsonl, run_on_ray
from loraner.data.jsonl import jsonl_line
from loraner.deid import (
    DeidConfig,
    DeidOutput,
    DeidPipeline,
    load_deid_config,
    resolve_secret,
    with_overrides,
)
from loraner.errors import ConfigError, DataError
from loraner.eval.deid import DEID_SUMMARY_HEADERS, deid_summary_rows, run_deid_evaluation
from loraner.eval.report import render_text_table
from loraner.inference import BackendName, NERPredictor
from loraner.inference.backends import DEFAULT_DTYPE, DTYPE_HELP, DType
from loraner.modeldir import model_or_adapter, resolve_model_dir
from loraner.settings import ExperimentConfig

RecognizerChoice = Literal["with", "without", "both"]
RECOGNIZER_CHOICES: dict[str, bool | str] = {"with": True, "without": False, "both": "both"}


def register(app: typer.Typer) -> None:
    app.command("deid")(friendly_errors(deid))


@dataclass(frozen=True)
class Document:
    id: Any
    text: str
    key: str | None = None


def deid(
    text: str | None = typer.Argument(None, help="Text to de-identify (or use --input)"),
    model: Path | None = typer.Option(None, "--model", "-m", help="Merged or exported model directory"),
    adapter: Path | None = typer.Option(None, "--adapter", help="LoRA adapter directory (not with --model)"),
    base: str | None = typer.Option(None, "--base", help="The adapter's base model (default: as recorded)"),
    dtype: DType = typer.Option(DEFAULT_DTYPE, "--dtype", help=DTYPE_HELP, envvar="LORANER_DTYPE"),
    input_: Path | None = typer.Option(
        None,
        "--input",
        "-i",
        help='JSONL ({"text", "id"?, "document_key"?} per line) or a .txt file (one document)',
    ),
    output: Path | None = typer.Option(None, "--output", "-o", help="JSONL output (default: stdout)"),
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        help="De-identification YAML, e.g. configs/deid.yaml (default: every type becomes [TYPE])",
    ),
    backend: BackendName = typer.Option("auto", "--backend", help="Runtime for the model"),
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
    threads: int | None = typer.Option(None, "--threads", help="Runtime threads (default: all cores)"),
    engine: Engine = typer.Option(
        "local", "--engine", help="local: this process; ray: Ray Data actors (JSONL or Parquet files)"
    ),
    address: str | None = typer.Option(
        None, "--address", help="--engine ray: join this Ray cluster (default: start a local Ray)"
    ),
    concurrency: int = typer.Option(1, "--concurrency", min=1, help="--engine ray: model replicas (actors)"),
) -> None:
    """De-identify TEXT, or every document of a file. Writes {"id", "text", "items"} per document:
    the de-identified text and one item per replaced span (type, operator, offsets, replacement).
    With --engine ray: a JSONL or Parquet file through Ray Data; rows that fail get an "error"."""
    if (text is None) == (input_ is None):
        raise ConfigError("give either TEXT or --input FILE (.jsonl or .txt)")
    if input_ is not None and output is not None and output.resolve() == input_.resolve():
        raise ConfigError("--output must differ from --input (it would be overwritten while read)")
    model_dir = model_or_adapter(model, adapter, base)
    settings = load_config(config, o_threshold=o_threshold, recognizers=recognizers)
    if engine == "ray":
        resolve_secret(settings)  # here, before any actor starts: a missing secret is one clear line
        run_on_ray(
            "deid",
            model,
            input_,
            output,
            address,
            concurrency,
            threads,
            {"backend": backend, "dtype": dtype},
            deid_config=settings.model_dump(mode="json"),
            include_original=include_original,
        )
        return
    total = count_documents(input_) if input_ is not None else 1  # bad input fails before the model loads
    pipeline = build_pipeline(model_dir, settings, backend, threads, base=base, dtype=dtype)
    if text is not None:
        record = output_record(Document(None, text), pipeline.run(text), include_original)
        del record["id"]
        typer.echo(json.dumps(record, ensure_ascii=False, indent=2))
    else:
        assert input_ is not None
        deid_file(pipeline, input_, output, total, include_original)


def deid_file(
    pipeline: DeidPipeline, source: Path, target: Path | None, total: int, include_original: bool
) -> None:
    if target is None:
        deid_documents(pipeline, read_documents(source), sys.stdout, total, include_original)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8") as sink:
        deid_documents(pipeline, read_documents(source), sink, total, include_original)
    typer.echo(f"wrote {total} documents to {target}", err=True)


def load_config(
    path: Path | None, *, o_threshold: float | None = None, recognizers: bool | None = None
) -> DeidConfig:
    """The YAML at ``path`` (or the built-in defaults) with command-line overrides applied."""
    base = load_deid_config(path) if path is not None else DeidConfig()
    return with_overrides(base, o_threshold=o_threshold, recognizers=recognizers)


def build_pipeline(
    model: Path,
    config: DeidConfig,
    backend: str,
    threads: int | None,
    *,
    base: str | None = None,
    dtype: str = DEFAULT_DTYPE,
) -> DeidPipeline:
    """The model, run with the config's ``o_threshold``, in a pipeline (which checks the secret first)."""
    resolve_secret(config)  # before the model loads: a missing secret should not cost a model load
    predictor = NERPredictor.from_pretrained(
        resolve_model_dir(model), backend, threads=threads, base=base, dtype=dtype
    )
    return DeidPipeline(partial(predictor.predict_batch, o_threshold=config.o_threshold), config)


def read_documents(path: Path) -> Iterator[Document]:
    """A ``.txt`` file is one document (id: the file name's stem); anything else is read as JSONL."""
    if path.suffix.lower() == ".txt":
        yield Document(path.stem, _read_text(path))
        return
    for number, record in read_jsonl(path):
        key = record.get("document_key")
        if key is not None and not isinstance(key, str):
            raise DataError('"document_key" must be a string', source=str(path), line=number)
        yield Document(record.get("id", number), record["text"], key)


def _read_text(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot read: {exc.strerror}", source=str(path)) from exc
    except UnicodeDecodeError:
        raise DataError("not UTF-8 text", source=str(path)) from None
    if not text.strip():
        raise DataError("the file is empty", source=str(path))
    return text


def count_documents(path: Path) -> int:
    """Read (and so validate) the whole input before any inference; the error names the line."""
    return sum(1 for _ in read_documents(path))


def output_record(doc: Document, output: DeidOutput, include_original: bool) -> dict[str, Any]:
    record: dict[str, Any] = {"id": doc.id, **output.result.to_dict()}
    if include_original:
        record["original"] = doc.text
    return record


def deid_documents(
    pipeline: DeidPipeline, docs: Iterator[Document], sink: IO[str], total: int, include_original: bool
) -> None:
    """Chunks of documents through the pipeline; pseudonyms are consistent within a chunk (and across
    all of them with ``consistent_across_documents``)."""
    with tqdm(total=total, unit="doc", desc="deid", file=sys.stderr, disable=None) as bar:
        chunk: list[Document] = []
        for doc in docs:
            chunk.append(doc)
            if len(chunk) >= CHUNK_LINES:
                _write_chunk(pipeline, chunk, sink, include_original)
                bar.update(len(chunk))
                chunk = []
        if chunk:
            _write_chunk(pipeline, chunk, sink, include_original)
            bar.update(len(chunk))


def _write_chunk(pipeline: DeidPipeline, docs: list[Document], sink: IO[str], include_original: bool) -> None:
    outputs = pipeline.run_batch([d.text for d in docs], [d.key for d in docs])
    for doc, output in zip(docs, outputs, strict=True):
        sink.write(jsonl_line(output_record(doc, output, include_original)))


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
