"""``loraner calibrate``: the ``o_threshold`` that reaches a chosen character-level PHI recall on the
validation notes, written into a de-identification config (:mod:`loraner.eval.calibrate`)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from loraner import defaults
from loraner.commands import friendly_errors
from loraner.commands.options import BackendOption, DTypeOption
from loraner.deid import DeidConfig, load_deid_config
from loraner.errors import ConfigError
from loraner.eval.calibrate import Calibration, calibrate_o_threshold, write_calibrated_config
from loraner.eval.report import render_text_table
from loraner.settings import load_config

HEADERS = ("o_threshold", "char recall", "entity P", "entity R", "entity F1", "leaks", "")


def register(app: typer.Typer) -> None:
    app.command("calibrate")(friendly_errors(calibrate))


def calibrate(
    model: Path = typer.Option(
        ..., "--model", "-m", help="Merged model dir, adapter dir, a run dir, or a hub id OWNER/NAME"
    ),
    config: Path = typer.Option(
        ..., "--config", help="Preset naming the data (its validation split is used)"
    ),
    target_char_recall: float = typer.Option(
        ..., "--target-char-recall", help="Character-level PHI recall to reach, e.g. 0.995"
    ),
    deid_config: Path | None = typer.Option(
        None,
        "--deid-config",
        help="De-identification config to calibrate, e.g. configs/deid.yaml (default: built-in)",
    ),
    output: Path = typer.Option(
        ..., "--output", "-o", help="Where to write the calibrated de-identification config (YAML)"
    ),
    split: str = typer.Option(
        "validation", "--split", help="Split to calibrate on (never the test split you report)"
    ),
    recognizers: bool = typer.Option(
        True, "--recognizers/--no-recognizers", help="Score with the config's pattern recognisers"
    ),
    set_: list[str] = typer.Option([], "--set", help="Override a key of --config"),
    backend: BackendOption = defaults.BACKEND.value,
    dtype: DTypeOption = defaults.DTYPE.value,
) -> None:
    """Choose the O-probability cut-off (o_threshold) whose de-identified SPLIT reaches the recall you
    ask for, at the least precision; write it into a copy of the de-identification config and print the
    precision it costs. Prints scores only, never note text."""
    cfg = load_config(config, set_)
    deid = load_deid_config(deid_config) if deid_config else DeidConfig()
    result = calibrate_o_threshold(
        model,
        cfg,
        deid,
        target_char_recall,
        split=split,
        recognizers=recognizers,
        backend=backend,
        dtype=dtype,
    )
    typer.echo(render_text_table(HEADERS, _rows(result)))
    report = output.with_suffix(".json")
    if result.chosen is None:
        best = max(s.char_recall for s in result.scores)
        raise ConfigError(
            f"no o_threshold reaches character-level PHI recall {target_char_recall} on '{split}' "
            f"(the most is {best:.4f}); nothing written"
        )
    write_calibrated_config(deid_config, output, result, str(model))
    report.write_text(json.dumps({"model": str(model), **result.to_dict()}, indent=2), encoding="utf-8")
    chosen, argmax = result.chosen, result.argmax
    typer.echo(
        f"o_threshold {chosen.o_threshold}: char recall {chosen.char_recall:.4f} "
        f"(argmax {argmax.char_recall:.4f}), entity precision {chosen.precision:.4f} "
        f"(argmax {argmax.precision:.4f})"
    )
    typer.echo(f"written: {output} and {report}")


def _rows(result: Calibration) -> list[tuple[str, ...]]:
    rows = []
    for s in result.scores:
        mark = "<- chosen" if s is result.chosen else ""
        name = "argmax" if s.o_threshold is None else f"{s.o_threshold:g}"
        rows.append(
            (
                name,
                f"{s.char_recall:.4f}",
                f"{s.precision:.4f}",
                f"{s.recall:.4f}",
                f"{s.f1:.4f}",
                str(s.leaks),
                mark,
            )
        )
    return rows
