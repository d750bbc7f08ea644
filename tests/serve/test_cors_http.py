"""CORS through a real Uvicorn server: none by default; with ``cors_origins``, preflights answered
without a key and CORS headers on every answer to an allowed origin, errors included."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from serve_helpers import LIMITS, FakePredictor, running_server, wait_ready

from loraner.errors import ConfigError
from loraner.serve import ServeSettings, create_app

ALLOWED = "https://notes.example.org"
OTHER = "https://evil.example.net"
KEY = "cors-key-0123456789abcdef"
TEXT = {"text": "Kari Nordmann bor i Oslo."}
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}


@pytest.fixture(scope="module")
def cors_server() -> Iterator[str]:
    settings = ServeSettings(**LIMITS, api_keys=KEY, cors_origins=f"{ALLOWED}, http://localhost:5173")
    with running_server(create_app(settings, lambda s: FakePredictor())) as url:
        wait_ready(url)
        yield url


def test_by_default_no_cors_headers_and_no_preflight(client):
    answer = client.post("/predict", json=TEXT, headers={"Origin": ALLOWED})
    assert answer.status_code == 200 and "access-control-allow-origin" not in answer.headers
    preflight = client.options("/predict", headers={"Origin": ALLOWED, **PREFLIGHT})
    assert preflight.status_code == 405 and "access-control-allow-origin" not in preflight.headers


def test_preflight_from_an_allowed_origin_needs_no_key(cors_server):
    answer = httpx.options(f"{cors_server}/predict", headers={"Origin": ALLOWED, **PREFLIGHT})
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == ALLOWED
    assert {"authorization", "content-type"} <= {
        h.strip().lower() for h in answer.headers["access-control-allow-headers"].split(",")
    }
    assert "POST" in answer.headers["access-control-allow-methods"]


def test_preflight_from_another_origin_is_refused(cors_server):
    answer = httpx.options(f"{cors_server}/predict", headers={"Origin": OTHER, **PREFLIGHT})
    assert answer.status_code == 400 and "access-control-allow-origin" not in answer.headers


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({"Authorization": f"Bearer {KEY}"}, TEXT, 200),  # the answer itself
        ({}, TEXT, 401),  # the page can read why it was refused
        ({"Authorization": f"Bearer {KEY}"}, {"text": ""}, 422),  # a validation error
        ({"Authorization": f"Bearer {KEY}"}, {"text": "x" * 30_000}, 413),  # the middleware's own answer
    ],
)
def test_every_answer_to_an_allowed_origin_carries_cors_headers(cors_server, headers, body, status):
    answer = httpx.post(f"{cors_server}/predict", json=body, headers={"Origin": ALLOWED, **headers})
    assert answer.status_code == status
    assert answer.headers["access-control-allow-origin"] == ALLOWED
    exposed = {h.strip().lower() for h in answer.headers["access-control-expose-headers"].split(",")}
    assert {"x-request-id", "retry-after", "www-authenticate"} <= exposed


def test_an_answer_to_another_origin_has_no_cors_headers(cors_server):
    answer = httpx.post(
        f"{cors_server}/predict", json=TEXT, headers={"Origin": OTHER, "Authorization": f"Bearer {KEY}"}
    )
    assert "access-control-allow-origin" not in answer.headers  # the browser keeps it from the page


def test_origins_come_from_the_environment_comma_separated(monkeypatch):
    monkeypatch.setenv("LORANER_CORS_ORIGINS", f"{ALLOWED}, http://[::1]:8080 ,http://localhost:5173")
    assert ServeSettings.from_env().cors_origins == [ALLOWED, "http://[::1]:8080", "http://localhost:5173"]
    assert ServeSettings.from_env(cors_origins="*").cors_origins == ["*"]


@pytest.mark.parametrize(
    "origin",
    [
        f"{ALLOWED}/",  # a trailing slash: the browser's Origin never has one
        f"{ALLOWED}/app",  # a path
        "notes.example.org",  # no scheme
        "ftp://notes.example.org",  # not a web origin
    ],
)
def test_when_an_origin_is_malformed_then_the_error_names_the_setting(monkeypatch, origin):
    monkeypatch.setenv("LORANER_CORS_ORIGINS", origin)
    with pytest.raises(ConfigError, match=r"LORANER_CORS_ORIGINS \(--cors-origins\): .*is not an origin"):
        ServeSettings.from_env()
