"""The files of a model directory by name, the run directory's layout, and who may read them.

Every file name loraner reads or writes in a model directory is spelled here, weight files too; the
other modules (and the backends) ask these names and predicates instead of globbing themselves.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from loraner.errors import ConfigError, ModelError

META_FILE = "loraner.json"
CONFIG_FILE = "config.json"
ADAPTER_CONFIG_FILE = "adapter_config.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
TOKENIZER_FILE = "tokenizer.json"
SPECIAL_TOKENS_FILE = "special_tokens_map.json"
ONNX_FILE = "model.onnx"
# ``loraner export onnx-adapters``: one base graph whose LoRA branches and head are inputs (not a model on
# its own: ``model.onnx`` is never this file), and beside each adapter its weights in ONNX Runtime's
# adapter format, in ``adapters/NAME/`` (a copy of the PEFT adapter directory plus that file).
ONNX_LORA_BASE_FILE = "lora_base.onnx"
ONNX_ADAPTER_FILE = "adapter.onnx_adapter"
ONNX_ADAPTERS_DIR = "adapters"
EXPORT_REPORT_FILE = "export_report.json"
# OpenVINO IR (``loraner export openvino``): in a folder of its own, with its own export report, so its
# ``model.bin`` is never taken for pickled PyTorch weights (``*.bin`` at the top level).
OPENVINO_DIR = "openvino"
OPENVINO_MODEL_FILE = "model.xml"
OPENVINO_WEIGHTS_FILE = "model.bin"
# The IR's two files as paths inside the model directory (what a hub download fetches).
OPENVINO_FILES = (f"{OPENVINO_DIR}/{OPENVINO_MODEL_FILE}", f"{OPENVINO_DIR}/{OPENVINO_WEIGHTS_FILE}")
CARD_FILE = "README.md"
ADAPTER_DIR = "adapter"
MERGED_DIR = "merged"

# Weights. A Transformers checkpoint: safetensors, or pickled PyTorch (read with weights_only).
SAFETENSORS_PATTERN = "*.safetensors"
PICKLED_WEIGHTS_PATTERN = "*.bin"
TORCH_WEIGHT_PATTERNS = (SAFETENSORS_PATTERN, PICKLED_WEIGHTS_PATTERN)
SAFETENSORS_FILE = "model.safetensors"  # a single-file checkpoint (what save_pretrained writes)
# A PEFT adapter, the preferred file first.
ADAPTER_WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")
# The token-classification head of BERT-family models (BERT, RoBERTa, MPNet, DistilBERT, DeBERTa...): new
# for each task, trained in full beside LoRA and saved with the adapter.
HEAD_MODULE = "classifier"


def is_adapter(model_dir: Path) -> bool:
    return (Path(model_dir) / ADAPTER_CONFIG_FILE).exists()


def has_torch_weights(model_dir: Path) -> bool:
    return any(any(Path(model_dir).glob(pattern)) for pattern in TORCH_WEIGHT_PATTERNS)


def has_onnx(model_dir: Path) -> bool:
    return (Path(model_dir) / ONNX_FILE).is_file()


def has_onnx_lora_base(model_dir: Path) -> bool:
    return (Path(model_dir) / ONNX_LORA_BASE_FILE).is_file()


def openvino_model(model_dir: Path) -> Path:
    """Where a model directory keeps its OpenVINO IR's graph (``openvino/model.xml``; weights beside it)."""
    return Path(model_dir) / OPENVINO_DIR / OPENVINO_MODEL_FILE


def has_openvino(model_dir: Path) -> bool:
    ir = openvino_model(model_dir)
    return ir.is_file() and ir.with_name(OPENVINO_WEIGHTS_FILE).is_file()


def has_weights(model_dir: Path) -> bool:
    """Weights some backend can run: PyTorch's, ``model.onnx``, an OpenVINO IR or an ONNX LoRA base graph
    (an adapter's are not enough alone)."""
    return any(check(model_dir) for check in (has_torch_weights, has_onnx, has_openvino, has_onnx_lora_base))


def adapter_weights(adapter_dir: Path) -> Path:
    """The weight file of a PEFT adapter directory."""
    for name in ADAPTER_WEIGHT_FILES:
        path = Path(adapter_dir) / name
        if path.exists():
            return path
    raise ModelError(f"{adapter_dir}: no adapter weights ({' or '.join(ADAPTER_WEIGHT_FILES)})")


def resolve_model_dir(path: str | Path) -> Path:
    """A model directory as given, or the model of a run directory (``merged/``, else ``adapter/``)."""
    path = Path(path)
    for sub in (MERGED_DIR, ADAPTER_DIR):
        if not (path / META_FILE).exists() and (path / sub).is_dir():
            return path / sub
    return path


def model_or_adapter(
    model: str | Path | None,
    adapter: str | Path | None,
    base: str | None,
    *,
    spelling: str = "--{name} {value}",
) -> Path:
    """What to load: ``model`` (a run directory resolves to its model) or ``adapter`` (optionally on
    ``base``). Paths and hub ids alike; ``spelling`` writes a parameter in the error as the caller's users
    write it (``--model DIR`` on the command line, ``model=DIR`` in Python)."""

    def spell(name: str, value: str) -> str:
        return spelling.format(name=name, value=value)

    if (model is None) == (adapter is None):
        raise ConfigError(
            f"give either {spell('model', 'DIR')} or {spell('adapter', 'DIR')} "
            f"(with {spell('base', 'MODEL')} if it is not recorded)"
        )
    if base is not None and adapter is None:
        raise ConfigError(f"{spell('base', 'MODEL')} goes with {spell('adapter', 'DIR')}")
    return resolve_model_dir(model) if model is not None else Path(adapter)  # type: ignore[arg-type]


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
        raise ModelError(f"{path}: cannot read it ({reason(exc)})") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{path}: expected a JSON object")
    return data


# --------------------------------------------------------------------------- permissions


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


def reason(exc: BaseException) -> str:
    """Why a file could not be read, in words a user can act on."""
    if isinstance(exc, PermissionError):
        return "permission denied: the process cannot read it (check the file's owner and mode)"
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    return getattr(exc, "strerror", None) or str(exc)
