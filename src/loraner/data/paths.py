"""Finding split files under ``DataConfig.path``."""

from __future__ import annotations

from pathlib import Path

from loraner.errors import ConfigError, DataError
from loraner.settings import DataConfig

GENERIC_SPLITS = {"train": "train", "validation": "validation", "test": "test"}


def data_dir(cfg: DataConfig) -> Path:
    """``cfg.path`` as an existing directory, or a ConfigError that says what to set."""
    if not cfg.path:
        raise ConfigError(f"data.path is required for format {cfg.format!r} (a directory of split files)")
    path = Path(cfg.path).expanduser()
    if not path.is_dir():
        raise ConfigError(f"data.path {str(path)!r} for format {cfg.format!r} is not a directory")
    return path


def find_split_file(directory: Path, name: str, extensions: tuple[str, ...]) -> Path:
    """``directory/name``, trying ``name`` as given and then with each extension appended."""
    candidates = [directory / name] + [directory / f"{name}{ext}" for ext in extensions]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = ", ".join(c.name for c in candidates)
    raise DataError(f"split file not found (tried {tried})", source=str(directory))


def split_files(
    cfg: DataConfig, extensions: tuple[str, ...], defaults: dict[str, str] | None = None
) -> dict[str, Path]:
    """Map each split name to its file. ``defaults`` replaces the generic mapping when it is unchanged."""
    directory = data_dir(cfg)
    mapping = defaults if defaults is not None and cfg.splits == GENERIC_SPLITS else cfg.splits
    return {split: find_split_file(directory, name, extensions) for split, name in mapping.items()}
