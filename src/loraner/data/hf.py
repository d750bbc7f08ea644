"""Readers built on the ``datasets`` library: any token-classification dataset, and Few-NERD.

``datasets`` is imported inside functions: it is a ``[train]`` extra and slow to import.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from loraner.data.conll import coarse_type
from loraner.data.schemes import detect_scheme, to_iob2
from loraner.errors import ConfigError, DataError
from loraner.settings import DataConfig
from loraner.types import Splits, WordExample

DEFAULT_TOKEN_COLUMN = "tokens"
DEFAULT_TAG_COLUMN = "ner_tags"
FEWNERD_COLUMNS = {"fine": "fine_ner_tags", "coarse": "ner_tags"}


def tag_names(ds: Any, tag_column: str) -> list[str] | None:
    """The ClassLabel names of an int tag column, or None when the tags are already strings."""
    feature = ds.features[tag_column]
    inner = getattr(feature, "feature", None)  # Sequence(...) and List(...) wrap the item feature
    if inner is None and isinstance(feature, list) and feature:
        inner = feature[0]
    names = getattr(inner, "names", None)
    return list(names) if names else None


def examples_from_hf_dataset(
    ds: Any,
    token_column: str = DEFAULT_TOKEN_COLUMN,
    tag_column: str = DEFAULT_TAG_COLUMN,
    *,
    scheme: str = "auto",
    tag_map: Callable[[str], str] | None = None,
    source: str = "dataset",
) -> list[WordExample]:
    """Word examples from one ``datasets.Dataset`` split: token and tag columns, tags to IOB2.

    Tags may be ints (named by the column's ClassLabel) or strings. Errors name ``source`` and the
    row index as the "line". ``tag_map`` rewrites tag names before conversion (Few-NERD coarse).
    """
    for column in (token_column, tag_column):
        if column not in ds.column_names:
            raise DataError(
                f"column {column!r} not found; columns are {', '.join(ds.column_names)}", source=source
            )
    names = tag_names(ds, tag_column)
    all_tokens = list(ds[token_column])
    all_tags = [_named(row, names, source, i) for i, row in enumerate(list(ds[tag_column]))]
    if tag_map is not None:
        all_tags = [[tag_map(t) for t in row] for row in all_tags]
    if scheme == "auto":
        scheme = detect_scheme(all_tags, source=source, lines=range(len(all_tags)))
    ids = list(ds["id"]) if "id" in ds.column_names else None
    examples = []
    for i, (tokens, tags) in enumerate(zip(all_tokens, all_tags, strict=True)):
        if len(tokens) != len(tags):
            raise DataError(f"{len(tokens)} tokens but {len(tags)} tags", source=source, line=i)
        examples.append(
            WordExample(
                tokens=[str(t) for t in tokens],
                tags=to_iob2(tags, scheme, source=source, line=i),
                id=str(ids[i]) if ids is not None else str(i),
            )
        )
    return examples


def _named(row: Sequence[Any], names: list[str] | None, source: str, index: int) -> list[str]:
    if names is None:
        return [str(t) for t in row]
    try:
        return [names[int(t)] for t in row]
    except (IndexError, ValueError, TypeError):
        raise DataError(
            f"tag ids {list(row)} do not fit the {len(names)} class names", source=source, line=index
        ) from None


def load_hub_dataset(name: str, config: str | None) -> Any:
    """``datasets.load_dataset`` (kept as one call so tests can replace it)."""
    import datasets

    try:
        return datasets.load_dataset(name, config)
    except Exception as exc:  # the library raises many types (network, missing config, ...)
        raise DataError(f"could not load dataset {name!r} (config {config!r}): {exc}") from exc


def load_local_or_hub(path_or_name: str, config: str | None) -> Any:
    """A ``save_to_disk`` folder via ``load_from_disk``; anything else via ``load_dataset``."""
    path = Path(path_or_name).expanduser()
    if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
        import datasets

        return datasets.load_from_disk(str(path))
    return load_hub_dataset(path_or_name, config)


def _split(dataset: Any, split: str, hub_split: str, source: str) -> Any:
    try:
        return dataset[hub_split]
    except KeyError:
        have = ", ".join(dataset.keys()) if hasattr(dataset, "keys") else "(a single split)"
        raise DataError(
            f"split {hub_split!r} (for {split}) not found; available: {have}", source=source
        ) from None


def _column_name(value: int | str, default: str) -> str:
    # The config's defaults (0 and -1) are column numbers for column files; datasets need names.
    return value if isinstance(value, str) else default


def read_hf(cfg: DataConfig) -> Splits:
    """The ``hf`` format: ``cfg.path`` (local folder or hub name), else ``cfg.hub_name``/``hub_config``."""
    if cfg.path:
        source, dataset = cfg.path, load_local_or_hub(cfg.path, None)
    else:
        source, dataset = cfg.hub_name, load_hub_dataset(cfg.hub_name, cfg.hub_config)
    token_column = _column_name(cfg.token_column, DEFAULT_TOKEN_COLUMN)
    tag_column = _column_name(cfg.tag_column, DEFAULT_TAG_COLUMN)
    return {
        split: list(
            examples_from_hf_dataset(
                _split(dataset, split, hub_split, source),
                token_column,
                tag_column,
                scheme=cfg.scheme,
                source=f"{source}[{hub_split}]",
            )
        )
        for split, hub_split in cfg.splits.items()
    }


def read_fewnerd_hub(cfg: DataConfig) -> Splits:
    """The ``fewnerd-hub`` format: Few-NERD from the hub, fine or coarse types (IO -> IOB2)."""
    if not cfg.hub_name:
        raise ConfigError("data.hub_name is required for format 'fewnerd-hub'")
    dataset = load_hub_dataset(cfg.hub_name, cfg.hub_config)
    tag_column = FEWNERD_COLUMNS[cfg.tag_type]
    # The coarse column is already coarse; mapping the fine names covers datasets that only
    # ship fine tags (harmless on coarse names, which contain no dash).
    return {
        split: list(
            examples_from_hf_dataset(
                _split(dataset, split, hub_split, cfg.hub_name),
                "tokens",
                tag_column,
                scheme="IO",
                tag_map=coarse_type if cfg.tag_type == "coarse" else None,
                source=f"{cfg.hub_name}[{hub_split}]",
            )
        )
        for split, hub_split in cfg.splits.items()
    }
