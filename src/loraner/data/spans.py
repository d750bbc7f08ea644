"""Reporting what the readers repair in character-span data."""

from __future__ import annotations

import warnings


def warn_dropped(source: str, dropped: int, what: str, rule: str) -> None:
    """One warning per file with the count, so data problems are visible but not noisy."""
    if dropped:
        warnings.warn(f"{source}: {dropped} {what} ({rule})", UserWarning, stacklevel=3)
