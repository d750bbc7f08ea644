"""The model directory: the files a trained model leaves, and the one place that reads and writes them.

=========================  ==========================  ================================================
file                       written by                  what
=========================  ==========================  ================================================
``loraner.json``           train; copied by merge and  :class:`ModelMeta`: labels, window, word split,
                           export                      base model and its fingerprint, data format
``config.json``, weights   train (full), merge         a Transformers model (``id2label``)
``adapter_config.json``,   train (LoRA)                the PEFT adapter with the trained classifier
``adapter_model.*``
``tokenizer.json`` ...     train, merge, export        the fast tokenizer
``model.onnx``,            export onnx                 the ONNX graph and its parity report
``export_report.json``
``README.md``              train; carried by merge     the model card (Hugging Face metadata, scores)
=========================  ==========================  ================================================

A run directory (``loraner train -o RUN``) holds ``adapter/`` and ``merged/``. Any Hugging Face
token-classification checkpoint is a model directory too: without ``loraner.json`` its labels come
from ``config.json`` and everything else from the defaults of :class:`ModelMeta`.

Reads JSON only (no torch, no weights), so the ONNX service can use it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from loraner import __version__
from loraner.data.registry import reader_unit
from loraner.data.words import WordSplit
from loraner.errors import ConfigError, ModelError
from loraner.settings import DEFAULT_STRIDE, resolve_model_path, window_problem

log = logging.getLogger(__name__)

META_FILE = "loraner.json"
CONFIG_FILE = "config.json"
ADAPTER_CONFIG_FILE = "adapter_config.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
TOKENIZER_FILE = "tokenizer.json"
SPECIAL_TOKENS_FILE = "special_tokens_map.json"
ONNX_FILE = "model.onnx"
EXPORT_REPORT_FILE = "export_report.json"
CARD_FILE = "README.md"
ADAPTER_DIR = "adapter"
MERGED_DIR = "merged"
TORCH_WEIGHT_PATTERNS = ("*.safetensors", "*.bin")

# How ``model.onnx`` may be quantized by ``loraner export onnx`` (dynamic: weights int8, activations
# quantized per call).
Quantization = Literal["int8"]
QUANTIZATIONS: tuple[str, ...] = get_args(Quantization)

# Positions of BERT-style encoders: the window of a checkpoint that does not say.
MAX_POSITIONS = 512

# Byte-level BPE models saw a space before every word in pre-training, so words must be tokenized with
# that space, also the first one and pre-split words ("add_prefix_space").
PREFIX_SPACE_MODEL_TYPES = frozenset(
    {"roberta", "xlm-roberta", "longformer", "bart", "gpt2", "deberta", "camembert", "luke"}
)

# Config keys that identify a base model's architecture, for the fingerprint.
_FINGERPRINT_CONFIG_KEYS = (
    "model_type",
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
)


class ModelMeta(BaseModel):
    """``loraner.json``: what a model needs besides its weights to predict as it was trained.

    Unknown keys (from a newer loraner) are ignored with a warning rather than refused, so an older
    service can still serve a newer model.
    """

    model_config = ConfigDict(extra="ignore", protected_namespaces=())

    loraner_version: str = __version__
    name: str | None = None
    labels: list[str] = Field(..., min_length=1)
    max_length: int | None = Field(
        None, description="window in tokens; None: the tokenizer's limit, at most 512 positions"
    )
    stride: int = DEFAULT_STRIDE
    # A checkpoint without loraner.json gets "conll": published NER checkpoints are nearly all trained on
    # word-level corpora (CoNLL, OntoNotes, WikiANN) with labels on first subwords.
    word_split: WordSplit = "conll"
    data_format: str | None = None
    label_all_subwords: bool = False
    lora: bool = False
    base_model: str | None = None
    base_fingerprint: dict[str, str] | None = None
    config: dict[str, Any] | None = Field(None, description="the experiment config of the training run")
    merged_from: str | None = None
    onnx: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _fill_from_run_config(cls, data: Any) -> Any:
        """loraner.json files written before ``data_format``/``word_split``/``name`` were recorded."""
        if not isinstance(data, dict):
            return data
        run = data.get("config") if isinstance(data.get("config"), dict) else {}
        data = dict(data)
        data.setdefault("name", run.get("name"))
        fmt = data.get("data_format") or (run.get("data") or {}).get("format")
        if fmt:
            data["data_format"] = fmt
            if "word_split" not in data:
                data["word_split"] = "conll" if _unit(fmt) == "words" else "tokenizer"
        return data

    @model_validator(mode="after")
    def _window(self) -> ModelMeta:
        problem = window_problem(self.max_length, self.stride) if self.max_length else None
        if problem is None and self.stride < 0:
            problem = f"stride must be >= 0 (got {self.stride})"
        if problem:
            raise ValueError(problem)
        return self

    def with_overrides(
        self, *, max_length: int | None = None, stride: int | None = None, word_split: str | None = None
    ) -> ModelMeta:
        """This metadata with the caller's choices (None keeps the recorded value), checked again."""
        updates = {"max_length": max_length, "stride": stride, "word_split": word_split}
        raw = {**self.model_dump(), **{k: v for k, v in updates.items() if v is not None}}
        try:
            return ModelMeta.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(_problems(exc)) from None

    def window(self, tokenizer: Any) -> int:
        """The window size: the recorded one, else the tokenizer's, never above 512 positions."""
        if self.max_length:
            return self.max_length
        limit = getattr(tokenizer, "model_max_length", None) or MAX_POSITIONS
        return int(min(limit, MAX_POSITIONS))


def _unit(data_format: str) -> str | None:
    try:
        return reader_unit(data_format)
    except ConfigError:  # a format of another loraner version: fall back to the default
        return None


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg'].removeprefix('Value error, ')}"
        for err in exc.errors()
    )


# --------------------------------------------------------------------------- reading and writing


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; ``{}`` when the file does not exist."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path}: not valid JSON ({exc})") from exc
    except RecursionError:
        raise ModelError(f"{path}: not valid JSON (nested too deeply)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: cannot read it ({_reason(exc)})") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{path}: expected a JSON object")
    return data


def read_meta(model_dir: Path, labels: list[str] | None = None) -> ModelMeta | None:
    """``loraner.json`` of ``model_dir``, or None when the directory has none. ``labels``: the list to
    use when the file records none (``config.json``'s, for a checkpoint that only adds a few settings)."""
    path = Path(model_dir) / META_FILE
    raw = read_json(path)
    if not raw:
        return None
    if labels and not raw.get("labels"):
        raw["labels"] = labels
    unknown = sorted(set(raw) - set(ModelMeta.model_fields))
    if unknown:
        log.warning("%s: ignoring keys this loraner version does not know: %s", path, ", ".join(unknown))
    try:
        return ModelMeta.model_validate(raw)
    except ValidationError as exc:
        raise ModelError(f"{path}: {_problems(exc)}") from None


def write_meta(model_dir: Path, meta: ModelMeta) -> Path:
    path = Path(model_dir) / META_FILE
    path.write_text(meta.model_dump_json(indent=2, exclude_none=True), encoding="utf-8")
    return path


def copy_meta(source_dir: Path, target_dir: Path, **updates: Any) -> ModelMeta:
    """The metadata of ``source_dir`` (recorded or derived) with ``updates``, written to ``target_dir``."""
    meta = model_meta(source_dir).model_copy(update=updates)
    write_meta(target_dir, meta)
    return meta


def labels_from_config(config: dict[str, Any], source: Path) -> list[str]:
    id2label = config.get("id2label") or {}
    try:
        return [id2label[k] for k in sorted(id2label, key=int)]
    except ValueError:
        raise ModelError(f"{source}: id2label has a key that is not an integer") from None


def model_meta(model_dir: str | Path) -> ModelMeta:
    """What ``model_dir`` says about itself: ``loraner.json``, else ``config.json``'s labels and the
    defaults. Fails with a message naming the directory when it holds no model or its files disagree."""
    path = Path(model_dir)
    if not path.is_dir():
        raise ModelError(f"{path}: model directory not found")
    check_readable(path)
    config_path = path / CONFIG_FILE
    config = read_json(config_path)
    config_labels = labels_from_config(config, config_path)
    meta = read_meta(path, config_labels)
    if meta is None:
        if not config and not any(path.iterdir()):
            raise ModelError(f"{path}: no model in {path} (the directory is empty)")
        if not config_labels:
            raise ModelError(
                f"{path}: not a model directory (no {META_FILE}, and no {CONFIG_FILE} with id2label)"
            )
        return ModelMeta(labels=config_labels, name=path.resolve().name)
    if config_labels and len(config_labels) != len(meta.labels):
        raise ModelError(
            f"{path}: {META_FILE} has {len(meta.labels)} labels but {CONFIG_FILE} has {len(config_labels)}"
        )
    if not meta.name:
        meta = meta.model_copy(update={"name": path.resolve().name})
    return meta


def model_type(model_dir: Path) -> str | None:
    return read_json(Path(model_dir) / CONFIG_FILE).get("model_type")


def resolve_model_dir(path: str | Path) -> Path:
    """A model directory as given, or the model of a run directory (``merged/``, else ``adapter/``)."""
    path = Path(path)
    for sub in (MERGED_DIR, ADAPTER_DIR):
        if not (path / META_FILE).exists() and (path / sub).is_dir():
            return path / sub
    return path


def is_adapter(model_dir: Path) -> bool:
    return (Path(model_dir) / ADAPTER_CONFIG_FILE).exists()


def has_torch_weights(model_dir: Path) -> bool:
    return any(any(Path(model_dir).glob(pattern)) for pattern in TORCH_WEIGHT_PATTERNS)


def make_readable(model_dir: Path) -> None:
    """Files readable by everyone, folders (``model_dir`` itself too) listable: safetensors writes its
    files with mode 0600, so a model mounted into a container that runs as another user (the image's
    uid 10001) could not be read."""
    _add_mode(Path(model_dir), 0o755)
    for root, dirs, files in os.walk(model_dir):
        for name in dirs:
            _add_mode(Path(root) / name, 0o755)
        for name in files:
            _add_mode(Path(root) / name, 0o644)


def _add_mode(path: Path, bits: int) -> None:
    os.chmod(path, path.stat().st_mode | bits)


def check_readable(model_dir: Path) -> None:
    """Fails naming the first file or folder of ``model_dir`` this process may not read.

    Loaders hide the cause: safetensors reports an unreadable ``model.safetensors`` as "No such file or
    directory", and a service would stay unready without saying why. Each file is opened (not read):
    what counts is what this process can do, whatever its user, groups or ACLs."""
    model_dir = Path(model_dir)
    _require_listable(model_dir)
    for root, dirs, files in os.walk(model_dir):
        for name in sorted(dirs):
            _require_listable(Path(root) / name)
        for name in sorted(files):
            path = Path(root) / name
            try:
                with open(path, "rb"):
                    pass
            except PermissionError:
                _not_readable(path)
            except OSError:  # a dangling link or a special file: the loader that needs it will say so
                continue


def _require_listable(path: Path) -> None:
    try:
        os.listdir(path)
    except PermissionError:
        _not_readable(path)


def _not_readable(path: Path) -> None:
    info = path.stat()
    kind = "folder" if path.is_dir() else "file"
    raise ModelError(
        f"{path}: this {kind} is not readable by this user (uid {os.geteuid()}; it has mode "
        f"{info.st_mode & 0o777:04o}, owner uid {info.st_uid}): make it readable, e.g. "
        f"chmod -R a+rX {path if path.is_dir() else path.parent}"
    )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied: the process cannot read it (check the file's owner and mode)"
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    return getattr(exc, "strerror", None) or str(exc)


# --------------------------------------------------------------------------- the Hugging Face hub

# A hub model id: NAME or OWNER/NAME (letters, digits, "-", "_", "."), as the hub allows them.
HUB_REPO_ID = re.compile(r"(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}")
REVISION_SEP = "@"


def hub_id(name: str | Path) -> tuple[str, str | None] | None:
    """``(repo id, revision)`` when ``name`` names a model on the Hugging Face hub (``OWNER/NAME``,
    optionally pinned as ``OWNER/NAME@REVISION``: a tag, branch or commit), None when it is a local path
    (one that exists, or one no hub id could be: absolute, ``./x``, ``a/b/c``) or ``pkg:MODULE``."""
    text = str(name)
    if not text or text.startswith("pkg:") or Path(text).exists():
        return None
    repo, _, revision = text.partition(REVISION_SEP)
    if not HUB_REPO_ID.fullmatch(repo) or ".." in repo or repo.endswith((".", "-")):
        return None
    return repo, revision or None


# What a model directory can hold, and nothing else a hub repo may carry (TensorFlow, Flax, Rust, GGUF
# weights); pickled PyTorch weights only for a repo without safetensors.
HUB_MODEL_FILES = ["*.json", "*.safetensors", "*.onnx", "*.onnx_data", "*.txt", "*.model", CARD_FILE]
HUB_PICKLED_WEIGHTS = ["*.bin"]
# Never uploaded: what `loraner evaluate` leaves beside a model (a deid report quotes the PHI it
# missed), hidden files, editor backups.
PUSH_IGNORE = ["eval-*.json", "deid-report-*.md", ".*", "**/.*", "*~"]


def local_model_source(name: str | Path) -> Path:
    """The local directory of a model named by a path, ``pkg:MODULE``, or a hub id: ``OWNER/NAME``,
    pinned as ``OWNER/NAME@REVISION``, downloaded once into the Hugging Face cache
    (``snapshot_download``; later calls reuse it, also offline). The one place a model name becomes a
    directory: predict, serve, export, evaluate, ``--base`` and training all come through here."""
    text = str(name)
    if text.startswith("pkg:"):
        return Path(resolve_model_path(text))
    found = hub_id(text)
    if found is None:
        return Path(text)
    return download_model(*found)


def download_model(repo_id: str, revision: str | None = None) -> Path:
    """``snapshot_download`` of the files a model directory needs; a failure is one line naming the
    model and the fix."""
    from huggingface_hub import snapshot_download

    options = {"revision": revision, "library_name": "loraner", "library_version": __version__}
    label = f"{repo_id}@{revision}" if revision else repo_id
    try:
        path = Path(snapshot_download(repo_id, allow_patterns=HUB_MODEL_FILES, **options))
        if not _has_weights(path):
            path = Path(
                snapshot_download(repo_id, allow_patterns=HUB_MODEL_FILES + HUB_PICKLED_WEIGHTS, **options)
            )
    except Exception as exc:  # the hub's errors, sorted into messages below
        raise ModelError(f"{label}: {hub_problem(exc, revision)}") from None
    log.info("%s: using %s", label, path)
    return path


def _has_weights(path: Path) -> bool:
    return has_torch_weights(path) or (path / ONNX_FILE).is_file()


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
    check_pushable(path)
    if hub_id(repo_id) is None and not Path(repo_id).exists():
        raise ConfigError(f"--repo-id {repo_id!r}: not a hub repository id (OWNER/NAME)")
    from huggingface_hub import HfApi

    api = HfApi(library_name="loraner", library_version=__version__)
    message = commit_message or f"Upload {model_meta(path).name or path.name} with loraner {__version__}"
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


def check_pushable(path: Path) -> None:
    """A loraner model directory, whole: ``loraner.json``, weights (or an adapter, or ONNX) and a fast
    tokenizer. A run directory names the sub-folder to push instead."""
    if not path.is_dir():
        raise ModelError(f"{path}: model directory not found")
    if not (path / META_FILE).is_file():
        subs = [sub for sub in (MERGED_DIR, ADAPTER_DIR) if (path / sub / META_FILE).is_file()]
        if subs:
            choices = " or ".join(str(path / sub) for sub in subs)
            raise ModelError(f"{path}: a training run, not a model directory: push {choices}")
        raise ModelError(f"{path}: not a loraner model directory (no {META_FILE}; train or export one)")
    model_meta(path)  # loraner.json and config.json must be readable and agree
    has_model = _has_weights(path) or is_adapter(path)
    if not has_model:
        raise ModelError(f"{path}: no weights (*.safetensors, {ONNX_FILE} or an adapter): nothing to serve")
    if not (path / "tokenizer.json").is_file():
        raise ModelError(
            f"{path}: no tokenizer.json (loraner needs the fast tokenizer for character offsets)"
        )


# --------------------------------------------------------------------------- tokenizer


def tokenizer_class(model_dir: Path) -> Any:
    """The class ``tokenizer_config.json`` names, else ``AutoTokenizer``.

    ``AutoTokenizer`` imports Transformers' model-config code, which imports torch whenever it is
    installed: about 225 MB more RSS and 2 s more start-up for an ONNX service that never uses it.
    """
    import transformers  # heavy: only when a tokenizer is actually loaded

    name = read_json(model_dir / TOKENIZER_CONFIG_FILE).get("tokenizer_class")
    found = getattr(transformers, name, None) if isinstance(name, str) else None
    return found if found is not None and hasattr(found, "from_pretrained") else transformers.AutoTokenizer


def load_tokenizer(name_or_path: str | Path, kind: str | None = None) -> Any:
    """The fast tokenizer of a model directory, a hub id or ``pkg:MODULE``, set up to tokenize words as
    the model saw them in pre-training (``add_prefix_space`` for byte-level BPE models). ``kind``: the
    model type, when the caller knows it."""
    local = local_model_source(name_or_path)
    source = str(local)
    if not local.is_dir():
        raise ModelError(f"{name_or_path}: model directory not found")
    kind = kind or model_type(local)
    if importlib.util.find_spec("transformers") is None:
        return load_fast_tokenizer(local, kind)
    cls = tokenizer_class(local)
    kwargs = {"add_prefix_space": True} if kind in PREFIX_SPACE_MODEL_TYPES else {}
    try:
        tokenizer = cls.from_pretrained(source, **kwargs)
    except PermissionError as exc:
        raise ModelError(f"{source}: cannot load the tokenizer ({_reason(exc)})") from exc
    except (OSError, ValueError) as exc:
        raise ModelError(f"{source}: cannot load the tokenizer: {exc}") from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(f"{source}: a fast tokenizer (tokenizer.json) is needed for character offsets")
    return tokenizer


def load_fast_tokenizer(model_dir: Path, kind: str | None = None) -> FastTokenizer:
    """``tokenizer.json`` of ``model_dir`` with the ``tokenizers`` library alone: how the ONNX service
    tokenizes where Transformers is not installed (the serving image, 126 MB smaller without it).
    ``load_tokenizer`` picks it then; it tokenizes exactly as Transformers' fast tokenizer of the same
    file does (tests/test_tokenizer_parity.py)."""
    model_dir = Path(model_dir)
    path = model_dir / TOKENIZER_FILE
    if not path.is_file():
        raise ModelError(
            f"{model_dir}: no {TOKENIZER_FILE}; without Transformers installed (as in the ONNX image) the "
            "tokenizer must be a fast tokenizer's tokenizer.json, as `loraner export onnx` writes it"
        )
    from tokenizers import Tokenizer  # a dependency of the serve path; Rust, small

    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        if kind in PREFIX_SPACE_MODEL_TYPES:
            _add_prefix_space(state)
        tokenizer = Tokenizer.from_str(json.dumps(state))
    except Exception as exc:  # tokenizers raises a bare Exception for a file it cannot parse
        raise ModelError(f"{path}: cannot load the tokenizer: {_reason(exc)}") from exc
    config = read_json(model_dir / TOKENIZER_CONFIG_FILE)
    specials = read_json(model_dir / SPECIAL_TOKENS_FILE)
    return FastTokenizer(tokenizer, config.get("pad_token") or specials.get("pad_token"), config)


def _add_prefix_space(state: dict[str, Any]) -> None:
    """What Transformers does to a byte-level BPE tokenizer loaded with ``add_prefix_space=True``."""
    for key in ("pre_tokenizer", "post_processor"):
        part = state.get(key) or {}
        for step in [part, *part.get("pretokenizers", []), *part.get("processors", [])]:
            if step.get("type") in ("ByteLevel", "RobertaProcessing"):
                step["add_prefix_space"] = True


class FastTokenizer:
    """The part of a Transformers fast tokenizer the engine calls (``__call__`` for texts or pre-split
    words with offsets and word ids, ``pad_token_id``, ``model_max_length``, ``len``), over the same Rust
    tokenizer. Truncation and padding recorded in the file are off, as in a Transformers call without
    them: windows handle length."""

    is_fast = True

    def __init__(self, tokenizer: Any, pad_token: Any, config: dict[str, Any]) -> None:
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self.backend_tokenizer = tokenizer
        if isinstance(pad_token, dict):  # {"content": "<pad>", ...} in some files
            pad_token = pad_token.get("content")
        self.pad_token_id = tokenizer.token_to_id(pad_token) if isinstance(pad_token, str) else None
        limit = config.get("model_max_length")
        self.model_max_length = int(limit) if isinstance(limit, (int, float)) else None

    def __len__(self) -> int:
        return int(self.backend_tokenizer.get_vocab_size(with_added_tokens=True))

    def __call__(
        self,
        text: str | list[str] | list[list[str]],
        *,
        add_special_tokens: bool = True,
        is_split_into_words: bool = False,
        return_offsets_mapping: bool = False,
        return_attention_mask: bool = True,
        verbose: bool = True,
    ) -> FastEncoding:
        """One text, a list of texts, or (``is_split_into_words``) a list of word lists. Offsets and
        word ids are always there; the other flags are accepted for Transformers' signature."""
        single = isinstance(text, str)
        encodings = self.backend_tokenizer.encode_batch(
            [text] if single else list(text),
            is_pretokenized=is_split_into_words,
            add_special_tokens=add_special_tokens,
        )
        return FastEncoding(encodings, single)


# Transformers' names for the fields of a tokenizers ``Encoding``.
_ENCODING_FIELDS = {"input_ids": "ids", "offset_mapping": "offsets", "attention_mask": "attention_mask"}


class FastEncoding:
    """``enc["input_ids"]``, ``enc["offset_mapping"]``, ``enc.word_ids(i)``, as Transformers returns them."""

    def __init__(self, encodings: list[Any], single: bool) -> None:
        self.encodings = encodings
        self.single = single

    def __getitem__(self, key: str) -> Any:
        values = [getattr(e, _ENCODING_FIELDS[key]) for e in self.encodings]
        return values[0] if self.single else values

    def word_ids(self, index: int = 0) -> list[int | None]:
        return self.encodings[index].word_ids


# --------------------------------------------------------------------------- base-model fingerprint


# Bumped whenever base_fingerprint's recipe changes: caches keyed on it (the bench's adapters) rebuild.
FINGERPRINT_SCHEME = 2
_FINGERPRINT_ROWS = 1024  # rows hashed at a time (the digest is that of the whole tensor)


def base_fingerprint(model: Any) -> dict[str, str]:
    """Identifies the weights an adapter was trained on: a hash of the architecture's config and of a
    few frozen tensors (the input embeddings, the first and the last encoder weight matrix).

    ``model`` is the base Transformers model *before* LoRA wraps it (its classifier head is excluded:
    that is part of the adapter).
    """
    config = model.config.to_dict()
    arch = {k: config.get(k) for k in _FINGERPRINT_CONFIG_KEYS}
    matrices = [
        (name, p) for name, p in model.named_parameters() if p.dim() == 2 and "classifier" not in name
    ]
    chosen = [("embeddings", model.get_input_embeddings().weight)]
    chosen += [matrices[1], matrices[-1]] if len(matrices) > 2 else matrices
    import torch  # present whenever a model is: this module itself must not need it (ONNX serving)

    digest = hashlib.sha256()
    for name, tensor in chosen:
        digest.update(name.encode())
        # Rounded to bf16 first: the same base loaded in fp32 (training) or bf16 (serving) hashes alike.
        # Row blocks, not the whole tensor: an fp32 copy of RoBERTa's embeddings would be 154 MB at load.
        for block in tensor.detach().split(_FINGERPRINT_ROWS):
            rounded = block.to(torch.bfloat16).float().cpu().contiguous()
            digest.update(rounded.numpy().tobytes())
    return {
        "config": hashlib.sha256(json.dumps(arch, sort_keys=True).encode()).hexdigest()[:16],
        "weights": digest.hexdigest()[:16],
    }
