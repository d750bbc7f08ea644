"""``loraner`` command line: thin wrappers that parse options and call library functions."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import typer

from loraner import defaults
from loraner.commands import calibrate as calibrate_commands
from loraner.commands import deid as deid_commands
from loraner.commands import friendly_errors
from loraner.commands import hub as hub_commands
from loraner.commands import inference as inference_commands
from loraner.commands import labelstudio as label_studio_commands
from loraner.commands.deid import RecognizerChoice
from loraner.commands.options import BackendOption, DTypeOption, cli_help
from loraner.errors import ConfigError

app = typer.Typer(help="LoRA fine-tuning, evaluation, merging and serving for NER.", no_args_is_help=True)
data_app = typer.Typer(help="Make and inspect data sets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def _setup(verbose: bool = False) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Under torchrun / accelerate launch (RANK set): rank 0 logs as usual, the others only their
    # warnings and errors, tagged with their rank.
    rank = int(os.environ.get("RANK", "0") or 0)
    if rank:
        tagged = f"[rank {rank}] %(levelname)s %(name)s: %(message)s"
        logging.basicConfig(level=logging.WARNING, format=tagged)
        logging.getLogger("loraner").setLevel(logging.WARNING)
        verbose = False
    else:
        logging.basicConfig(
            level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
        )
        logging.getLogger("loraner").setLevel(logging.INFO)
    if not verbose and importlib.util.find_spec("transformers") is not None:  # absent in the ONNX image
        # transformers v5 prints a load report for every new classification head; it is expected here.
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()


@app.command()
@friendly_errors
def train(
    config: Path = typer.Argument(..., help="YAML preset, e.g. configs/quickstart.yaml"),
    set_: list[str] = typer.Option([], "--set", help="Override a config key: --set training.epochs=3"),
    output: Path | None = typer.Option(None, "--output", "-o", help="Output directory (default runs/NAME)"),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint in OUTPUT"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Fine-tune per CONFIG; write metrics.json, report.md, confusion_matrix.png, adapter/ and merged/.
    Several processes: `torchrun --nproc_per_node N -m loraner train CONFIG` or `accelerate launch -m
    loraner train CONFIG` (docs/scale-out.md); rank 0 evaluates and writes everything."""
    _setup(verbose)
    from loraner.settings import load_config
    from loraner.train.run import run_training  # the [train] extra: imported only by this command

    cfg = load_config(config, set_)
    out = output or Path("runs") / cfg.name
    metrics = run_training(cfg, out, resume=resume)
    if metrics is not None:  # None on the other ranks of a distributed run: rank 0 reports
        _print_summary(metrics, out)


@app.command()
@friendly_errors
def evaluate(
    model: Path = typer.Option(
        ...,
        "--model",
        help=cli_help("merged model dir, adapter dir, a run dir, or a hub id OWNER/NAME[@REVISION]"),
    ),
    config: Path = typer.Option(..., "--config", help="Preset naming the data"),
    split: str = typer.Option("test", "--split"),
    set_: list[str] = typer.Option([], "--set"),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="JSON file (default MODEL/eval-SPLIT.json)"
    ),
    deid: bool = typer.Option(
        False, "--deid", help="Also score de-identification; leaks go to deid-report-SPLIT.md beside the JSON"
    ),
    deid_config: Path | None = typer.Option(
        None, "--deid-config", help="Operators for --deid, e.g. configs/deid.yaml (default: [TYPE])"
    ),
    recognizers: RecognizerChoice = typer.Option("both", "--recognizers", help="--deid pattern recognisers"),
    backend: BackendOption = defaults.BACKEND.value,
    dtype: DTypeOption = defaults.DTYPE.value,
) -> None:
    """Evaluate a trained model on a split, as it is served (its own window and word split): entity
    P/R/F1 per type, token accuracy, loss; with --deid also de-identification: entity P/R/F1/F2,
    character-level PHI recall and leak counts."""
    _setup()
    from loraner.eval.evaluate import evaluate_model
    from loraner.eval.report import format_metrics_table
    from loraner.modeldir import hub_id
    from loraner.settings import load_config

    cfg = load_config(config, set_)
    if output is None and hub_id(model):
        raise ConfigError(f"--model {model} is a hub id: give --output FILE (the cache is not for results)")
    target = output or model / f"eval-{split}.json"
    deid_scores = None
    if deid:  # first, so a bad deid config fails before the longer evaluation
        from loraner.commands.deid import evaluate_deid

        deid_scores = evaluate_deid(
            model, cfg, split, deid_config, recognizers, target, backend=backend, dtype=dtype
        )
    metrics = evaluate_model(model, cfg, split, backend=backend, dtype=dtype)
    if deid_scores is not None:
        metrics["deid"] = deid_scores
    target.write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    typer.echo(format_metrics_table(metrics))
    typer.echo(f"written: {target}")


@app.command()
@friendly_errors
def merge(
    adapter: Path = typer.Option(..., "--adapter", help="LoRA adapter directory"),
    output: Path = typer.Option(..., "--output", "-o"),
    base: str | None = typer.Option(None, "--base", help="Base model (default: the one it was trained on)"),
) -> None:
    """Merge LoRA adapters into the base model: a plain Transformers directory (safetensors), with the
    adapter's model card (README.md) carried over."""
    _setup()
    from loraner.eval.card import carry_card
    from loraner.export.merge import merge_adapter  # the [train] extra: imported only by this command

    merge_adapter(adapter, output, base)
    carry_card(adapter, output, base)
    typer.echo(f"merged model written to {output}")


@data_app.command("synth")
@friendly_errors
def data_synth(
    output: Path = typer.Option(..., "--output", "-o", help="Directory for train/validation/test .jsonl"),
    train_count: int = typer.Option(defaults.SYNTH_COUNTS.value["train"], "--train"),
    validation_count: int = typer.Option(defaults.SYNTH_COUNTS.value["validation"], "--validation"),
    test_count: int = typer.Option(defaults.SYNTH_COUNTS.value["test"], "--test"),
    seed: int = typer.Option(13, "--seed"),
) -> None:
    """Generate seeded clinical-style notes with PHI character spans (the project's own data)."""
    from loraner.data.synth import write_synth  # needs faker, a [train] extra

    counts = {"train": train_count, "validation": validation_count, "test": test_count}
    write_synth(output, counts, seed)
    typer.echo(f"wrote {sum(counts.values())} notes to {output}")


@data_app.command("inspect")
@friendly_errors
def data_inspect(path: Path = typer.Argument(..., help="A data file or directory")) -> None:
    """Counts per split and per entity type, and what the reader skipped or repaired ("warnings": a
    Label Studio export's tasks skipped, with their ids and why)."""
    from loraner.data.inspect import inspect_path  # keeps `loraner --help` fast

    typer.echo(json.dumps(inspect_path(path), indent=2, ensure_ascii=False))


@app.command()
@friendly_errors
def demo(
    output: Path = typer.Option(Path(".demo"), "--output", "-o"),
    serve: bool = typer.Option(
        True, "--serve/--no-serve", help="Serve the model with the demo page at the end"
    ),
    port: int = typer.Option(defaults.PORT.value, "--port"),
    min_f1: float = typer.Option(
        defaults.DEMO_MIN_F1.value, "--min-f1", help=cli_help(defaults.DEMO_MIN_F1.help)
    ),
) -> None:
    """The quickstart end to end, offline: synth data -> LoRA on MiniLM -> report -> merged -> serve."""
    _setup()
    from loraner.demo import run_demo  # the [train] extra: imported only by this command

    run_demo(output, min_f1=min_f1, serve=serve, port=port)


def _print_summary(metrics: dict[str, Any], out: Path) -> None:
    from loraner.eval.report import format_metrics_table  # matplotlib-free, but eval pulls the engine

    typer.echo(format_metrics_table(metrics))
    typer.echo(f"outputs in {out}: metrics.json report.md confusion_matrix.png adapter/ merged/")
    tracked = (metrics.get("config") or {}).get("training", {}).get("report_to") or []
    if "mlflow" in tracked:
        from loraner.train.tracking import mlflow_uri

        typer.echo(f"tracked run: mlflow ui --backend-store-uri {mlflow_uri(out)}")
    if "tensorboard" in tracked:
        from loraner.train.tracking import tensorboard_dir

        typer.echo(f"tracked run: tensorboard --logdir {tensorboard_dir(out)}")


inference_commands.register(app)
deid_commands.register(app)
hub_commands.register(app)
calibrate_commands.register(app)
label_studio_commands.register(app)


def main() -> None:
    app(prog_name="loraner")


if __name__ == "__main__":
    sys.exit(main())
