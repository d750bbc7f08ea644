"""The Hugging Face hub: what names a model there, downloading one into the cache, pushing one.

Tested at the library's call boundary (``snapshot_download``, ``HfApi``): the hub itself is never called
by the tests.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from loraner import __version__
from loraner.errors import ConfigError, ModelError
from loraner.modeldir.files import (
    ADAPTER_DIR,
    CARD_FILE,
    MERGED_DIR,
    META_FILE,
    ONNX_FILE,
    OPENVINO_FILES,
    PICKLED_WEIGHTS_PATTERN,
    SAFETENSORS_PATTERN,
    TOKENIZER_FILE,
    has_weights,
    is_adapter,
)
from loraner.modeldir.meta import ModelMeta, model_meta

log = logging.getLogger(__name__)

# A hub model id: NAME or OWNER/NAME (letters, digits, "-", "_", "."), as the hub allows them.
HUB_REPO_ID = re.compile(r"(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}")
REVISION_SEP = "@"


def hub_id(name: str | Path) -> tuple[str, str | None] | None:
    """``(repo id, revision)`` when ``name`` names a model on the Hugging Face hub (``OWNER/NAME``,
    optionally pinned as ``OWNER/NAME@REVISION``: a tag, branch or commit), None when it is a local path
    (one that exists, or one no hub id could be: absolute, ``./x``, ``a/b/c``) or ``pkg:MODULE`` (a
    repo id has no ``:``)."""
    text = str(name)
    if not text or Path(text).exists():
        return None
    repo, _, revision = text.partition(REVISION_SEP)
    if not HUB_REPO_ID.fullmatch(repo) or ".." in repo or repo.endswith((".", "-")):
        return None
    return repo, revision or None


# What a model directory can hold, and nothing else a hub repo may carry (TensorFlow, Flax, Rust, GGUF
# weights); pickled PyTorch weights only for a repo without safetensors.
HUB_MODEL_FILES = [
    "*.json",
    SAFETENSORS_PATTERN,
    "*.onnx",
    "*.onnx_data",
    *OPENVINO_FILES,
    "*.txt",
    "*.model",
    CARD_FILE,
]
HUB_PICKLED_WEIGHTS = [PICKLED_WEIGHTS_PATTERN]
# Never uploaded: what `loraner evaluate` leaves beside a model (a deid report quotes the PHI it
# missed), hidden files, editor backups.
PUSH_IGNORE = ["eval-*.json", "deid-report-*.md", ".*", "**/.*", "*~"]


def download_model(repo_id: str, revision: str | None = None) -> Path:
    """``snapshot_download`` of the files a model directory needs; a failure is one line naming the
    model and the fix."""
    from huggingface_hub import snapshot_download

    options = {"revision": revision, "library_name": "loraner", "library_version": __version__}
    label = f"{repo_id}@{revision}" if revision else repo_id
    try:
        path = Path(snapshot_download(repo_id, allow_patterns=HUB_MODEL_FILES, **options))
        if not has_weights(path):
            path = Path(
                snapshot_download(repo_id, allow_patterns=HUB_MODEL_FILES + HUB_PICKLED_WEIGHTS, **options)
            )
    except Exception as exc:  # the hub's errors, sorted into messages below
        raise ModelError(f"{label}: {hub_problem(exc, revision)}") from None
    log.info("%s: using %s", label, path)
    return path


def hub_problem(exc: BaseException, revision: str | None = None) -> str:
    """What went wrong talking to the hub, in one line that names the fix."""
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        LocalTokenNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(exc, (OfflineModeIsEnabled, LocalEntryNotFoundError)):
        why = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else "the hub cannot be reached"
        return (
            f"not a local directory, and not in the Hugging Face cache; {why}. Download it where the hub "
            "is reachable (it is cached for later), or give a local model directory"
        )
    if isinstance(exc, LocalTokenNotFoundError):
        return "not logged in to the Hugging Face hub: hf auth login, or set HF_TOKEN"
    if isinstance(exc, GatedRepoError):
        return "a gated repository: accept its terms on the hub, then log in (hf auth login, or HF_TOKEN)"
    if isinstance(exc, RepositoryNotFoundError):
        return (
            "no local directory of that name, and no such model on the Hugging Face hub (a private one "
            "needs a login: hf auth login, or HF_TOKEN)"
        )
    if isinstance(exc, RevisionNotFoundError):
        return f"the repository has no revision {revision!r} (a tag, branch or commit)"
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else None
        if status == 401:
            return "the hub refused the token (HTTP 401): log in again (hf auth login, or HF_TOKEN)"
        if status == 403:
            return "the token may not do this (HTTP 403): it needs write access to that namespace"
        return f"the hub answered HTTP {status}: {_first_line(exc)}"
    return f"cannot talk to the Hugging Face hub ({type(exc).__name__}: {_first_line(exc)})"


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]


def push_model(
    model_dir: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
) -> Any:
    """Upload a loraner model directory to the hub repo ``repo_id`` (created if needed; ``private``
    applies on creation; ``revision``: a branch, created from main if new). Returns the ``CommitInfo``.
    A directory that is not a loraner model directory is refused before anything is sent."""
    path = Path(model_dir)
    meta = check_pushable(path)
    if hub_id(repo_id) is None and not Path(repo_id).exists():
        raise ConfigError(f"--repo-id {repo_id!r}: not a hub repository id (OWNER/NAME)")
    from huggingface_hub import HfApi

    api = HfApi(library_name="loraner", library_version=__version__)
    message = commit_message or f"Upload {meta.name or path.name} with loraner {__version__}"
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        if revision:
            api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
        return api.upload_folder(
            repo_id=repo_id,
            folder_path=str(path),
            repo_type="model",
            revision=revision,
            commit_message=message,
            ignore_patterns=PUSH_IGNORE,
        )
    except Exception as exc:  # the hub's errors, sorted into messages
        raise ModelError(f"push to {repo_id}: {hub_problem(exc, revision)}") from None


def check_pushable(path: Path) -> ModelMeta:
    """A loraner model directory, whole: ``loraner.json``, weights (or an adapter, or ONNX) and a fast
    tokenizer; its metadata. A run directory names the sub-folder to push instead."""
    if not path.is_dir():
        raise ModelError(f"{path}: model directory not found")
    if not (path / META_FILE).is_file():
        subs = [sub for sub in (MERGED_DIR, ADAPTER_DIR) if (path / sub / META_FILE).is_file()]
        if subs:
            choices = " or ".join(str(path / sub) for sub in subs)
            raise ModelError(f"{path}: a training run, not a model directory: push {choices}")
        raise ModelError(f"{path}: not a loraner model directory (no {META_FILE}; train or export one)")
    meta = model_meta(path)  # loraner.json and config.json must be readable and agree
    if not (has_weights(path) or is_adapter(path)):
        raise ModelError(
            f"{path}: no weights ({SAFETENSORS_PATTERN}, {ONNX_FILE} or an adapter): nothing to serve"
        )
    if not (path / TOKENIZER_FILE).is_file():
        raise ModelError(
            f"{path}: no {TOKENIZER_FILE} (loraner needs the fast tokenizer for character offsets)"
        )
    return meta
