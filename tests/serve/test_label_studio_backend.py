"""``loraner serve --label-studio``: Label Studio's ML backend routes (health, setup, predict) through a
real Uvicorn server and a real tiny model, with API keys as Label Studio sends them (HTTP Basic)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from serve_helpers import LIMITS, running_server, wait_ready

from loraner.data.labelstudio import labelling_config
from loraner.inference import NERPredictor
from loraner.serve import ServeSettings, create_app

KEY = "ls-key-0123456789abcdef"
BASIC = httpx.BasicAuth("label-studio", KEY)  # Label Studio's "Basic Authentication" user and password
CONFIG = labelling_config(["PER", "LOC"])
TEXTS = ["Kari Nordmann bor i Tromsø.", "José Müller 😀 flew to Oslo from Bergen.", ""]


@pytest.fixture(scope="module")
def backend(tiny_roberta_dir: Path) -> Iterator[str]:
    settings = ServeSettings(**LIMITS, model=str(tiny_roberta_dir), label_studio=True, api_keys=KEY)
    with running_server(create_app(settings)) as url:
        wait_ready(url)
        yield f"{url}/label-studio"


def _tasks(texts: list[str]) -> list[dict]:
    return [{"id": 10 + i, "data": {"text": text}, "project": 1} for i, text in enumerate(texts)]


def test_when_health_is_asked_with_the_key_as_basic_password_then_up_with_the_model_version(
    backend, tiny_roberta_dir
):
    assert httpx.get(f"{backend}/health").status_code == 401
    assert (
        httpx.get(f"{backend}/health", auth=httpx.BasicAuth("x", "wrong-key-0123456789")).status_code == 401
    )
    response = httpx.get(f"{backend}/health", auth=BASIC)
    assert response.status_code == 200
    version = NERPredictor.from_pretrained(tiny_roberta_dir).version
    assert response.json() == {"status": "UP", "model_class": "loraner", "model_version": version}
    assert version.startswith(f"{tiny_roberta_dir.name}@") and len(version.split("@")[1]) == 12
    bearer = httpx.get(f"{backend}/health", headers={"Authorization": f"Bearer {KEY}"})
    assert bearer.status_code == 200


def test_when_a_project_connects_then_setup_checks_its_config_and_returns_the_model_version(backend):
    ok = httpx.post(
        f"{backend}/setup",
        json={"project": "1.1700000000", "schema": CONFIG, "hostname": "http://ls", "access_token": "t"},
        auth=BASIC,
    )
    assert ok.status_code == 200 and "@" in ok.json()["model_version"]
    choices = (
        '<View><Choices name="c" toName="t"><Choice value="a"/></Choices>'
        '<Text name="t" value="$text"/></View>'
    )
    bad = httpx.post(f"{backend}/setup", json={"project": "1.1", "schema": choices}, auth=BASIC)
    assert bad.status_code == 422 and "no <Labels" in bad.json()["detail"]
    other = httpx.post(
        f"{backend}/setup", json={"project": "1.1", "schema": labelling_config(["DRUG"])}, auth=BASIC
    )
    assert other.status_code == 422 and "share no type with the model's (LOC, PER)" in other.json()["detail"]


def test_when_tasks_are_sent_then_one_prediction_per_task_in_order_with_offsets_that_slice_the_text(
    backend, tiny_roberta_dir
):
    body = {
        "tasks": _tasks(TEXTS),
        "label_config": CONFIG,
        "project": "1.1700000000",
        "params": {"context": None},
    }
    response = httpx.post(f"{backend}/predict", json=body, auth=BASIC, timeout=60)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == len(TEXTS)
    expected = NERPredictor.from_pretrained(tiny_roberta_dir).predict_batch(TEXTS)
    for text, result, entities in zip(TEXTS, results, expected, strict=True):
        assert result["model_version"].startswith(f"{tiny_roberta_dir.name}@")
        assert 0.0 <= result["score"] <= 1.0
        regions = result["result"]
        # the same entities as the engine gives, as Label Studio regions of the config's control
        assert [(r["value"]["start"], r["value"]["end"], r["value"]["labels"]) for r in regions] == [
            (e.start, e.end, [e.type]) for e in entities
        ]
        for region in regions:
            assert (region["from_name"], region["to_name"], region["type"]) == ("label", "text", "labels")
            assert region["value"]["text"] == text[region["value"]["start"] : region["value"]["end"]]
    assert results[2]["result"] == [] and results[2]["score"] == 1.0  # an empty text: nothing to doubt


def test_when_the_config_names_another_field_and_offers_one_label_then_predictions_follow_it(backend):
    config = (
        '<View><Labels name="ner" toName="doc"><Label value="PER"/></Labels>'
        '<Text name="doc" value="$note"/></View>'
    )
    tasks = [{"id": 1, "data": {"note": text}} for text in TEXTS[:2]]
    response = httpx.post(f"{backend}/predict", json={"tasks": tasks, "label_config": config}, auth=BASIC)
    assert response.status_code == 200
    for result in response.json()["results"]:
        assert {(r["from_name"], r["to_name"]) for r in result["result"]} <= {("ner", "doc")}
        assert {r["value"]["labels"][0] for r in result["result"]} <= {"PER"}


@pytest.mark.parametrize(
    ("tasks", "status", "message"),
    [
        ([{"id": 7, "data": {"txt": "Oslo"}}], 422, "task 7: no text in data.text"),  # wrong field
        ([{"id": 8, "data": {"text": "x" * 1001}}], 422, "task 8: the text has 1001 characters"),  # too long
    ],
)
def test_when_a_task_cannot_be_predicted_then_the_error_names_it(backend, tasks, status, message):
    response = httpx.post(f"{backend}/predict", json={"tasks": tasks, "label_config": CONFIG}, auth=BASIC)
    assert response.status_code == status and message in response.json()["detail"]


def test_when_more_tasks_than_max_batch_are_sent_then_all_are_answered(backend):
    texts = [f"Kari {i} bor i Oslo." for i in range(LIMITS["max_batch"] * 2 + 1)]
    response = httpx.post(f"{backend}/predict", json={"tasks": _tasks(texts)}, auth=BASIC, timeout=60)
    assert response.status_code == 200 and len(response.json()["results"]) == len(texts)


def test_when_the_flag_is_off_then_the_routes_are_not_served(fake_server):
    assert httpx.get(f"{fake_server}/label-studio/health").status_code == 404
