"""Servers for the HTTP tests: real Uvicorn on 127.0.0.1, with a fake predictor or the tiny model;
and headless Chromium for the demo-page tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from serve_helpers import LIMITS, FakePredictor, running_server, wait_ready

from loraner.serve import ServeSettings, create_app

# A de-identification config with three different operators (the default server has replace only).
DEID_SECRET_ENV = "LORANER_TEST_DEID_SECRET"
DEID_YAML = f"""
types: [PER, LOC]
default: replace
per_type:
  PER: {{operator: mask}}
  LOC: {{operator: hash, length: 8}}
secret_env: {DEID_SECRET_ENV}
"""

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def fake_predictor() -> FakePredictor:
    return FakePredictor()


@pytest.fixture(scope="session")
def fake_server(fake_predictor: FakePredictor) -> Iterator[str]:
    settings = ServeSettings(**LIMITS, concurrency=2)
    with running_server(create_app(settings, lambda s: fake_predictor)) as url:
        wait_ready(url)
        yield url


@pytest.fixture(scope="session")
def client(fake_server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake_server, timeout=30) as c:
        yield c


@pytest.fixture(scope="session")
def deid_server(tmp_path_factory: pytest.TempPathFactory, fake_predictor: FakePredictor) -> Iterator[str]:
    """The fake model with ``DEID_YAML`` (mask, hash, replace) loaded from a file, as LORANER_DEID_CONFIG."""
    path = tmp_path_factory.mktemp("deid-config") / "deid.yaml"
    path.write_text(DEID_YAML, encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(DEID_SECRET_ENV, "serve-test-secret")  # read by `hash` on every request
        settings = ServeSettings(**LIMITS, deid_config=str(path))
        with running_server(create_app(settings, lambda s: fake_predictor)) as url:
            wait_ready(url)
            yield url


@pytest.fixture(scope="session")
def no_deid_server(fake_predictor: FakePredictor) -> Iterator[str]:
    settings = ServeSettings(**LIMITS, deid=False)
    with running_server(create_app(settings, lambda s: fake_predictor)) as url:
        wait_ready(url)
        yield url


def chromium_path() -> str | None:
    for candidate in (os.environ.get("LORANER_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


@pytest.fixture(scope="module")
def chromium() -> Iterator:
    """Debian's headless Chromium driven by Playwright, one per test module (install: make browser).

    Module scope, not session: Playwright's sync API runs its own event loop, which must not stay
    alive while other modules' tests run asyncio code."""
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium installed (make browser)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()
