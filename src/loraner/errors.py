"""The one exception family users see. Messages name the file, line, record or field and what is wrong."""

from __future__ import annotations


class LoranerError(Exception):
    """Base class: the CLI prints the message and exits 1; the service maps it to a 4xx."""


class DataError(LoranerError):
    """Bad input data. Built with the location so every message points at the culprit."""

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None) -> None:
        where = ""
        if source is not None:
            where = f"{source}:{line}: " if line is not None else f"{source}: "
        super().__init__(f"{where}{message}")
        self.source = source
        self.line = line


class ConfigError(LoranerError):
    """A preset or override that cannot be used."""


class ModelError(LoranerError):
    """A model directory that cannot be loaded or exported."""


class DataWarning(UserWarning):
    """What a reader skipped or repaired in a file, said once per file: ``details`` holds the same as data
    (``loraner data inspect`` prints it)."""

    def __init__(self, message: str, details: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.details = details or {}
