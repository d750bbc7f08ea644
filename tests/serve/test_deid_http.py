"""POST /deidentify and /deidentify/batch through a real Uvicorn server (fake predictor): answers, every
bad input, limits, logging without text, metrics, configuration and switching it off."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from serve_helpers import (
    BAD_BATCH_BODIES,
    BAD_TEXT_BODIES,
    LIMITS,
    NOT_JSON_BODIES,
    SECRET_TRIGGER,
    FakePredictor,
    access_records,
    running_server,
    wait_ready,
)

from loraner.errors import ConfigError
from loraner.serve import ServeSettings, create_app

TEXT = "José Müller 😀 flew from Oslo to 東京 and São Paulo."


def test_info_lists_the_deidentify_feature_by_default(client):
    assert "deidentify" in client.get("/").json()["features"]
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/deidentify", "/deidentify/batch"} <= set(paths)


def test_when_text_has_phi_then_answer_is_rewritten_with_exact_offsets(client):
    response = client.post("/deidentify", json={"text": TEXT})
    assert response.status_code == 200
    data = response.json()
    assert data["text"] == "[PER] 😀 flew from [LOC] to [LOC] and [LOC]."
    assert data["model"] == "fake-ner" and data["count"] == len(data["items"]) == 4
    for item, entity in zip(data["items"], data["entities"], strict=True):
        assert set(item) == {"type", "operator", "start", "end", "new_start", "new_end", "replacement"}
        assert data["text"][item["new_start"] : item["new_end"]] == item["replacement"]
        assert TEXT[entity["start"] : entity["end"]] == entity["text"]
        assert (item["start"], item["end"], item["type"]) == (entity["start"], entity["end"], entity["type"])
        assert item["operator"] == "replace"


def test_when_text_has_no_phi_then_text_is_unchanged(client):
    data = client.post("/deidentify", json={"text": "nothing to hide here"}).json()
    assert data == {
        "text": "nothing to hide here",
        "items": [],
        "entities": [],
        "count": 0,
        "model": "fake-ner",
    }


def test_batch_answers_in_order_and_equals_singles(client):
    texts = ["Kari Nordmann bor i Bergen.", "nothing here", TEXT]
    data = client.post("/deidentify/batch", json={"texts": texts, "document_keys": ["a", None, "b"]}).json()
    assert data["count"] == 3 and data["model"] == "fake-ner"
    singles = [client.post("/deidentify", json={"text": t}).json() for t in texts]
    assert [r["text"] for r in data["results"]] == [s["text"] for s in singles]
    assert [r["count"] for r in data["results"]] == [2, 0, 4]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        *BAD_TEXT_BODIES,
        ({"text": "a", "operator": "keep"}, "operator: Extra inputs are not permitted"),  # unknown field
        ({"text": "a", "document_key": 7}, "document_key: Input should be a valid string"),  # key type
        ({"text": "a", "document_key": "k" * 257}, "document_key: String should have at most 256"),
    ],
)
def test_when_deidentify_input_is_bad_then_422_with_clear_message(client, body, message):
    response = client.post("/deidentify", json=body)
    assert response.status_code == 422
    data = response.json()
    assert message in data["detail"]
    assert data["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        *BAD_BATCH_BODIES,
        ({"texts": ["a", "b"], "document_keys": ["k"]}, "document_keys has 1 items but texts has 2"),
        ({"texts": ["a"], "document_keys": [3]}, "document_keys.0: Input should be a valid string"),
    ],
)
def test_when_deidentify_batch_input_is_bad_then_422_with_clear_message(client, body, message):
    response = client.post("/deidentify/batch", json=body)
    assert response.status_code == 422
    assert message in response.json()["detail"]


@pytest.mark.parametrize(("content", "headers", "message"), NOT_JSON_BODIES)
def test_when_deidentify_body_is_not_json_then_422(client, content, headers, message):
    response = client.post("/deidentify", content=content, headers=headers)
    assert response.status_code == 422
    assert message in response.json()["detail"]


def test_when_deidentify_body_is_over_the_limit_then_413(client):
    big = json.dumps({"text": "a" * (LIMITS["max_body_bytes"] + 10)})
    response = client.post("/deidentify", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert "20000-byte limit" in response.json()["detail"]


def test_when_the_model_fails_then_opaque_500_and_no_text_in_logs(client, caplog):
    caplog.set_level(logging.INFO)
    secret = f"{SECRET_TRIGGER} pasient Kari Nordmann 12345678901"
    response = client.post("/deidentify", json={"text": secret}, headers={"x-request-id": "deid-500"})
    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error", "request_id": "deid-500"}
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "deid-500" in logged and "RuntimeError" in logged
    assert "Kari" not in logged and "12345678901" not in logged


def test_when_deidentified_then_access_log_has_lengths_not_text(client, caplog):
    caplog.set_level(logging.INFO)
    text = "Kari Nordmann bor i Bergen."
    client.post("/deidentify", json={"text": text}, headers={"x-request-id": "deid-log"})
    client.post("/deidentify/batch", json={"texts": [text, "Oslo"]}, headers={"x-request-id": "deid-log-b"})
    fields = ("path", "status", "texts", "text_chars", "entities")
    records = access_records(caplog, {"deid-log", "deid-log-b"})
    logged = {rid: {k: r.__dict__.get(k) for k in fields} for rid, r in records.items()}
    assert logged == {
        "deid-log": dict(zip(fields, ("/deidentify", 200, None, 27, 2), strict=True)),
        "deid-log-b": dict(zip(fields, ("/deidentify/batch", 200, 2, 31, 3), strict=True)),
    }
    everything = json.dumps([{k: str(v) for k, v in r.__dict__.items()} for r in caplog.records])
    assert "Kari" not in everything and "Bergen" not in everything


def test_metrics_count_requests_errors_and_replacements_by_type_and_operator(client):
    client.post("/deidentify", json={"text": "Kari Nordmann i Oslo"})
    client.post("/deidentify", json={"text": ""})
    text = client.get("/metrics").text
    assert 'loraner_requests_total{method="POST",path="/deidentify",status="200"}' in text
    assert 'loraner_request_errors_total{path="/deidentify",status="422"}' in text
    assert 'loraner_deid_replacements_total{operator="replace",type="PER"}' in text
    assert 'loraner_deid_replacements_total{operator="replace",type="LOC"}' in text


def test_when_a_config_file_is_given_then_its_operators_apply(deid_server):
    with httpx.Client(base_url=deid_server, timeout=30) as c:
        data = c.post("/deidentify", json={"text": "Kari Nordmann bor i Bergen."}).json()
        again = c.post("/deidentify", json={"text": "Bergen"}).json()
    person, place = data["items"]
    assert (person["operator"], person["replacement"]) == ("mask", "*" * len("Kari Nordmann"))
    assert place["operator"] == "hash" and "Bergen" not in place["replacement"]
    assert again["items"][0]["replacement"] == place["replacement"]  # keyed: same input, same hash
    assert "original" not in person  # include_original is off


def test_when_deid_is_switched_off_then_no_route_and_no_feature(no_deid_server):
    with httpx.Client(base_url=no_deid_server, timeout=30) as c:
        assert "deidentify" not in c.get("/").json()["features"]
        assert c.post("/deidentify", json={"text": "Oslo"}).status_code == 404
        assert c.post("/predict", json={"text": "Oslo"}).status_code == 200


def test_when_environment_names_the_config_then_settings_carry_it(monkeypatch):
    monkeypatch.setenv("LORANER_DEID_CONFIG", "/etc/deid.yaml")
    monkeypatch.setenv("LORANER_DEID", "false")
    settings = ServeSettings.from_env()
    assert (settings.deid_config, settings.deid) == ("/etc/deid.yaml", False)


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("default: {operator: hash}\nsecret_env: LORANER_TEST_UNSET_SECRET\n", "LORANER_TEST_UNSET_SECRET"),
        ("default: {operator: shred}\n", "unknown operator 'shred'"),  # typo in the operator
        ("o_threshold: 0\n", "o_threshold: Input should be greater than 0"),  # the predictor cannot use 0
    ],
)
def test_when_the_config_cannot_be_used_then_create_app_fails_naming_it(
    tmp_path, monkeypatch, yaml_text, message
):
    monkeypatch.delenv("LORANER_TEST_UNSET_SECRET", raising=False)
    path = tmp_path / "deid.yaml"
    path.write_text(yaml_text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("]", r"\]")):
        create_app(ServeSettings(deid_config=str(path)), lambda s: FakePredictor())


def test_when_the_config_file_is_missing_then_create_app_fails():
    with pytest.raises(ConfigError, match="deid config file not found"):
        create_app(ServeSettings(deid_config="/nonexistent/deid.yaml"), lambda s: FakePredictor())


def test_when_the_config_has_an_o_threshold_then_deid_passes_it_and_predict_keeps_its_own(tmp_path):
    path = tmp_path / "deid.yaml"
    path.write_text("o_threshold: 0.8\n", encoding="utf-8")
    predictor = FakePredictor()
    with running_server(create_app(ServeSettings(deid_config=str(path)), lambda s: predictor)) as url:
        wait_ready(url)
        with httpx.Client(base_url=url, timeout=30) as c:
            assert c.post("/deidentify", json={"text": "Ola i Oslo"}).status_code == 200
            assert c.post("/predict", json={"text": "Ola i Oslo"}).status_code == 200
    assert predictor.o_thresholds == [0.8, None]  # one model, each route with its own cut-off
