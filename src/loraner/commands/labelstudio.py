"""``loraner label-studio config``: the labelling config of a Label Studio project for a model, and
``loraner rank``: the unlabelled texts worth annotating next (docs/label-studio.md)."""

from __future__ import annotations

import typer

from loraner.commands import friendly_errors
from loraner.commands.options import ModelOption
from loraner.errors import ConfigError


def register(app: typer.Typer) -> None:
    label_studio_app = typer.Typer(help="Label Studio projects for a model.", no_args_is_help=True)
    label_studio_app.command("config")(friendly_errors(config))
    app.add_typer(label_studio_app, name="label-studio")


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
