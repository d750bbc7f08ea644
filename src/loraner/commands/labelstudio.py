"""The annotation loop's commands: ``loraner rank`` (the unlabelled texts worth annotating next) and
``loraner label-studio config`` (a Label Studio project's labelling config for a model);
docs/label-studio.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from loraner import defaults
from loraner.commands import friendly_errors
from loraner.commands.batch import read_label_config
from loraner.commands.options import (
    BackendOption,
    BatchSizeOption,
    LabelConfigOption,
    MaxLengthOption,
    ModelOption,
    OutputFormatOption,
    ThreadsOption,
)
from loraner.errors import ConfigError
from loraner.inference.uncertainty import MEASURES, Measure
from loraner.jobs.rank import DEFAULT_MAX_SIMILARITY

MEASURE_HELP = "; ".join(f"{name}: {text}" for name, text in MEASURES.items())


def register(app: typer.Typer) -> None:
    app.command("rank")(friendly_errors(rank))
    label_studio_app = typer.Typer(help="Label Studio projects for a model.", no_args_is_help=True)
    label_studio_app.command("config")(friendly_errors(config))
    app.add_typer(label_studio_app, name="label-studio")


def rank(
    model: ModelOption = None,
    input_: Annotated[
        Path | None, typer.Option("--input", "-i", help='the pool: JSONL, one {"text", "id"?, ...} per line')
    ] = None,
    top: Annotated[int, typer.Option("--top", "-n", min=1, help="how many texts to pick")] = 100,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="JSONL (default: stdout)")] = None,
    output_format: OutputFormatOption = "entities",
    label_config: LabelConfigOption = None,
    measure: Annotated[Measure, typer.Option("--measure", help=MEASURE_HELP)] = "sequence",
    max_similarity: Annotated[
        float,
        typer.Option(
            "--max-similarity",
            min=0.01,
            max=1.0,
            help="diversity guard: pass over a text whose word bigrams overlap a text already picked by at "
            "least this Jaccard similarity (1.0: only exact copies)",
        ),
    ] = DEFAULT_MAX_SIMILARITY,
    backend: BackendOption = defaults.BACKEND.value,
    threads: ThreadsOption = None,
    batch_size: BatchSizeOption = defaults.BATCH_SIZE.value,
    max_length: MaxLengthOption = None,
) -> None:
    """The TOP texts of a pool worth annotating next: the most uncertain first (--measure), no two
    near-duplicates. Each output row is the input record with "rank", "uncertainty", "confidence",
    "words" and the model's "entities"; with --output-format label-studio, a Label Studio task with the
    model's prediction as pre-annotation. A summary goes to stderr."""
    from loraner.data import labelstudio
    from loraner.inference import NERPredictor
    from loraner.jobs import read_documents
    from loraner.jobs.rank import rank as rank_pool
    from loraner.jobs.run import open_target

    if model is None or input_ is None:
        raise ConfigError("--model and --input are required")
    if output is not None and output.resolve() == input_.resolve():
        raise ConfigError("--output must differ from --input")
    names = read_label_config(label_config) if label_config else labelstudio.LabelNames()
    documents = list(read_documents(input_))  # read and checked before the model loads
    bad = next((d for d in documents if d.error), None)
    if bad is not None:
        raise ConfigError(str(bad.error))
    options = {"backend": backend, "threads": threads, "batch_size": batch_size, "max_length": max_length}
    predictor = NERPredictor.from_pretrained(model, **{k: v for k, v in options.items() if v is not None})
    ranking = rank_pool(predictor, documents, top, measure=measure, max_similarity=max_similarity)
    with open_target(output) as sink:
        for place, ranked in enumerate(ranking.top, start=1):
            text = ranked.document.text or ""
            if output_format == "label-studio":
                predicted = labelstudio.prediction(
                    ranked.entities, names, predictor.version, ranked.confidence.value
                )
                row = labelstudio.task(ranked.document.record, text, names, predicted)
            else:
                row = {
                    **ranked.document.record,
                    "rank": place,
                    "uncertainty": round(ranked.uncertainty, 6),
                    "confidence": round(ranked.confidence.value, 6),
                    "words": ranked.confidence.words,
                    "entities": [e.to_dict() for e in ranked.entities],
                }
            sink.write(json.dumps(row, ensure_ascii=False) + "\n")
    typer.echo(json.dumps(ranking.summary()), err=True)


def config(model: ModelOption = None) -> None:
    """The labelling config (XML) of a Label Studio text project for MODEL's entity types: the NER
    template's names (Labels "label" on Text "text", $text), which `loraner predict --output-format
    label-studio` and `loraner serve --label-studio` fill by default."""
    from loraner.data.labelstudio import labelling_config
    from loraner.modeldir import ModelDir
    from loraner.types import types_of_labels

    if model is None:
        raise ConfigError("--model is required (a model directory or hub id)")
    typer.echo(labelling_config(types_of_labels(ModelDir.open(model).meta.labels)), nl=False)
