"""Every endpoint and every bad input, through a real Uvicorn server on 127.0.0.1 (fake predictor)."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess

import httpx
import pytest
from serve_helpers import (
    BAD_BATCH_BODIES,
    BAD_TEXT_BODIES,
    LIMITS,
    NOT_JSON_BODIES,
    SECRET_TRIGGER,
    access_records,
    find_entities,
)

TEXT = "José Müller 😀 flew from Oslo to 東京 and São Paulo."


def test_info_describes_service_model_and_limits(client):
    data = client.get("/").json()
    assert data["service"] == "loraner" and data["ready"] is True
    assert data["model"]["name"] == "fake-ner"
    assert data["model"]["labels"] == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    assert data["model"]["types"] == ["PER", "LOC"]
    assert data["model"]["backend"] == "fake"
    assert data["version"]
    assert {k: data["limits"][k] for k in LIMITS} == LIMITS
    assert data["limits"]["max_request_chars"] == 200_000 and data["limits"]["request_timeout_s"] == 30
    assert "predict" in data["features"]


def test_health_and_ready_when_loaded(client):
    assert client.get("/health").json() == {"status": "ok", "ready": True}
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["ready"] is True


def test_predict_returns_character_offsets_into_the_text(client):
    response = client.post("/predict", json={"text": TEXT})
    assert response.status_code == 200
    data = response.json()
    assert data["model"] == "fake-ner"
    assert data["count"] == len(data["entities"]) == 4
    for e in data["entities"]:
        assert e["text"] == TEXT[e["start"] : e["end"]]
        assert set(e) == {"type", "text", "start", "end", "score"}
    assert [e["text"] for e in data["entities"]] == ["José Müller", "Oslo", "東京", "São Paulo"]


@pytest.mark.parametrize(
    "headers",
    [{"content-type": "application/x-www-form-urlencoded"}, {}],  # what `curl -d` sends; no type at all
)
def test_when_json_body_is_sent_as_a_form_then_it_is_read_as_json(client, headers):
    body = json.dumps({"text": TEXT}).encode()
    response = client.post("/predict", content=body, headers=headers)  # raw bytes: httpx adds no type
    assert response.status_code == 200
    assert [e["text"] for e in response.json()["entities"]] == ["José Müller", "Oslo", "東京", "São Paulo"]


@pytest.mark.skipif(shutil.which("curl") is None, reason="no curl on this machine")
def test_plain_curl_d_answers_with_character_offsets(fake_server):
    # The issue's own check: `curl -s localhost:8000/predict -d '{"text": "..."}'`, no -H.
    out = subprocess.run(
        ["curl", "-s", f"{fake_server}/predict", "-d", json.dumps({"text": TEXT})],
        capture_output=True,
        check=True,
        timeout=30,
    )
    entities = json.loads(out.stdout)["entities"]
    assert (entities[0]["text"], entities[0]["start"], entities[0]["end"]) == ("José Müller", 0, 11)
    assert all(e["text"] == TEXT[e["start"] : e["end"]] for e in entities)


def test_batch_answers_in_order_and_equals_singles(client):
    texts = ["Kari Nordmann bor i Bergen.", "nothing here", TEXT]
    data = client.post("/predict/batch", json={"texts": texts}).json()
    assert data["count"] == 3 and data["model"] == "fake-ner"
    singles = [client.post("/predict", json={"text": t}).json()["entities"] for t in texts]
    assert [r["entities"] for r in data["results"]] == singles
    assert [r["count"] for r in data["results"]] == [2, 0, 4]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        *BAD_TEXT_BODIES,
        ({"text": "a", "lang": "en"}, "lang: Extra inputs are not permitted"),  # typo'd / unknown field
    ],
)
def test_when_predict_input_is_bad_then_422_with_clear_message(client, body, message):
    response = client.post("/predict", json=body)
    assert response.status_code == 422
    data = response.json()
    assert message in data["detail"]
    assert data["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize(("content", "headers", "message"), NOT_JSON_BODIES)
def test_when_body_is_not_json_then_422(client, content, headers, message):
    response = client.post("/predict", content=content, headers=headers)
    assert response.status_code == 422
    assert message in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        *BAD_BATCH_BODIES,
    ],
)
def test_when_batch_input_is_bad_then_422_with_clear_message(client, body, message):
    response = client.post("/predict/batch", json=body)
    assert response.status_code == 422
    assert message in response.json()["detail"]


def test_when_body_over_limit_then_413(client):
    big = json.dumps({"text": "a" * (LIMITS["max_body_bytes"] + 10)})
    response = client.post("/predict", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert "20000-byte limit" in response.json()["detail"]
    assert response.json()["request_id"]


def test_when_chunked_body_over_limit_then_413(client):
    def chunks():  # no Content-Length: the limit must be enforced while reading
        yield b'{"text": "'
        for _ in range(30):
            yield b"a" * 1000
        yield b'"}'

    response = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_when_unexpected_error_then_opaque_500_with_request_id_and_no_text_in_logs(client, caplog):
    caplog.set_level(logging.INFO)
    secret = f"{SECRET_TRIGGER} patient Kari Nordmann 12345678901"
    response = client.post("/predict", json={"text": secret}, headers={"x-request-id": "trace-500"})
    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error", "request_id": "trace-500"}
    assert "Kari" not in response.text
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "trace-500" in logged and "RuntimeError" in logged
    assert "Kari" not in logged and "12345678901" not in logged


def test_access_log_has_lengths_not_text(client, caplog):
    caplog.set_level(logging.INFO)
    client.post("/predict", json={"text": "Kari Nordmann bor i Bergen."}, headers={"x-request-id": "log-1"})
    records = access_records(caplog, {"log-1"})
    assert set(records) == {"log-1"}
    fields = records["log-1"].__dict__
    assert fields["method"] == "POST" and fields["path"] == "/predict" and fields["status"] == 200
    assert fields["text_chars"] == 27 and fields["entities"] == 2 and fields["latency_ms"] >= 0
    assert "Kari" not in json.dumps({k: str(v) for k, v in fields.items()})


@pytest.mark.parametrize(
    ("sent", "echoed"),
    [("abc-123", True), ("has spaces", False), ("x" * 200, False)],
)
def test_request_id_is_echoed_when_sane_else_generated(client, sent, echoed):
    response = client.get("/health", headers={"x-request-id": sent})
    assert (response.headers["x-request-id"] == sent) is echoed
    assert response.headers["x-request-id"]


def test_unknown_route_and_method_are_json_errors(client):
    missing = client.get("/nope")
    assert missing.status_code == 404 and missing.json()["request_id"]
    wrong = client.get("/predict")
    assert wrong.status_code == 405


def test_openapi_docs_list_the_endpoints(client):
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert "https://" not in docs.text and "http://" not in docs.text  # nothing from a CDN: works offline
    for asset in ("/docs-static/swagger-ui-bundle.js", "/docs-static/swagger-ui.css"):
        assert asset in docs.text and client.get(asset).status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/", "/health", "/ready", "/predict", "/predict/batch"} <= set(paths)


def test_metrics_count_requests_latency_errors_and_entities(client):
    client.post("/predict", json={"text": "Kari Nordmann i Oslo"})
    client.post("/predict", json={"text": ""})
    text = client.get("/metrics").text
    assert 'loraner_requests_total{method="POST",path="/predict",status="200"}' in text
    assert 'loraner_request_errors_total{path="/predict",status="422"}' in text
    assert 'loraner_request_latency_seconds_bucket{le="0.005",path="/predict"}' in text
    assert 'loraner_entities_total{type="PER"}' in text and 'loraner_entities_total{type="LOC"}' in text
    assert "loraner_model_ready 1.0" in text
    assert "loraner_inference_seconds_count" in text


def test_demo_page_and_static_files_are_served(client):
    page = client.get("/demo")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert 'id="text"' in page.text and "/static/demo.js" in page.text
    for name in ("demo.js", "demo.css"):
        assert client.get(f"/static/{name}").status_code == 200


def test_direct_library_result_matches_http(client):
    data = client.post("/predict", json={"text": TEXT}).json()
    assert data["entities"] == [e.to_dict() for e in find_entities(TEXT)]


def test_async_client_many_concurrent_requests_all_succeed(fake_server):
    import asyncio

    texts = [f"Kari Nordmann {i} bor i Bergen" for i in range(40)]

    async def main():
        limits = httpx.Limits(max_connections=40)
        async with httpx.AsyncClient(base_url=fake_server, timeout=30, limits=limits) as ac:
            return await asyncio.gather(*(ac.post("/predict", json={"text": t}) for t in texts))

    responses = asyncio.run(main())
    assert [r.status_code for r in responses] == [200] * 40
    assert all(r.json()["count"] == 2 for r in responses)
