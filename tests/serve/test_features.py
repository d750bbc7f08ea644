"""Modes a caller plugs into ``create_app`` with ``routers``/``features``, beside the built-in route groups
(``loraner.serve.app.FEATURES``)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.testclient import TestClient
from serve_helpers import LIMITS, FakePredictor

from loraner.serve import ServeSettings, create_app

KEY = "features-test-key-0123456789"


def test_when_a_caller_brings_a_mode_then_its_routes_replace_the_built_in_ones_behind_the_key(tmp_path):
    own = APIRouter()

    @own.post("/deidentify")
    async def deidentify() -> dict[str, bool]:
        return {"own": True}

    # The built-in de-identification would fail at start-up on this config: it is never loaded.
    settings = ServeSettings(**LIMITS, deid_config=str(tmp_path / "missing.yaml"), api_keys=[KEY])
    app = create_app(settings, lambda s: FakePredictor(), routers=[own], features=["deidentify"])
    with TestClient(app) as client:
        auth = {"Authorization": f"Bearer {KEY}"}
        assert client.get("/", headers=auth).json()["features"] == ["predict", "predict_batch", "deidentify"]
        assert client.post("/deidentify", headers=auth).json() == {"own": True}
        assert client.post("/deidentify").status_code == 401  # the caller's routes are guarded like the API
        assert "/deidentify/batch" not in app.openapi()["paths"]
