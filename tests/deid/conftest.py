"""Fixtures for the de-identification tests: a secret in the environment and a span finder."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from loraner.types import Span

SECRET_ENV = "LORANER_DEID_SECRET"

SpanFinder = Callable[..., Span]


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    value = "unit-test-secret-0123456789abcdef"
    monkeypatch.setenv(SECRET_ENV, value)
    return value


@pytest.fixture
def no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)


def find_span(text: str, sub: str, label: str, nth: int = 0) -> Span:
    """The ``nth`` occurrence of ``sub`` in ``text`` as a span (fails loudly if absent)."""
    start = -1
    for _ in range(nth + 1):
        start = text.index(sub, start + 1)
    return Span(start, start + len(sub), label)


@pytest.fixture
def span_of() -> SpanFinder:
    return find_span
