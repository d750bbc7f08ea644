"""Servers for the HTTP tests: real Uvicorn on 127.0.0.1, with a fake predictor or the tiny model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from serve_helpers import LIMITS, FakePredictor, running_server, wait_ready

from loraner.serve import ServeSettings, create_app


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
def tiny_onnx_dir(tmp_path_factory: pytest.TempPathFactory, tiny_roberta_dir: Path) -> Path:
    """The tiny model exported once per session (the same cache tests/inference uses)."""
    from loraner.export.onnx import export_onnx

    out = tmp_path_factory.getbasetemp() / "tiny-onnx-fp32"
    if not (out / "model.onnx").exists():
        export_onnx(tiny_roberta_dir, out)
    return out
