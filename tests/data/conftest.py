from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from loraner.settings import shared_dir

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data"


@pytest.fixture
def fixtures() -> Path:
    """``tests/fixtures/data``: small files written for these tests."""
    return FIXTURES


@pytest.fixture
def shared_data() -> Callable[..., Path]:
    """A path under ``../shared/data``; the test is skipped when it is absent (a fresh clone)."""

    def find(*parts: str) -> Path:
        path = shared_dir().joinpath("data", *parts)
        if not path.exists():
            pytest.skip(
                f"needs the {parts[0]} data files of ../shared, not in a clone (looked in {shared_dir()})"
            )
        return path

    return find
