"""Many adapters over real HTTP: one tiny base, two trained adapters, the real app and predictor, on both
adapter routes (PyTorch and PEFT; ONNX Runtime over an exported base graph)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from serve_helpers import analyze, open_demo, running_server, wait_ready

from loraner.errors import ConfigError
from loraner.inference import NERPredictor
from loraner.serve import ServeSettings, create_app

# A sentence of the kind both tiny adapters were trained on, so each finds entities in it (the comparisons
# with the merged models below must compare something).
TEXT = "Kari Nordmann lives in Tromsø with friends."


@pytest.fixture(scope="module")
def adapter_folder(tmp_path_factory, tiny_adapter_runs) -> Path:
    folder = tmp_path_factory.mktemp("served-adapters")
    for name, run in tiny_adapter_runs.items():
        (folder / name).symlink_to(run / "adapter")
    (folder / "README").write_text("not an adapter")
    return folder


@pytest.fixture(scope="module", params=["torch", "onnx"])
def server(request, tiny_roberta_dir, adapter_folder) -> Iterator[str]:
    """The same app on both adapter routes: PEFT over the base model, and ONNX Runtime over the base graph
    the two adapters were exported with (fp32, so entities compare exactly with the merged models)."""
    base, folder = str(tiny_roberta_dir), str(adapter_folder)
    if request.param == "onnx":
        graph = request.getfixturevalue("onnx_adapters_fp32_dir")
        base, folder = str(graph), str(graph / "adapters")
    settings = ServeSettings(base=base, adapters=folder, default_adapter="general", microbatch_ms=5)
    with running_server(create_app(settings)) as url:
        wait_ready(url)
        yield url


@pytest.fixture(scope="module")
def client(server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def merged(tiny_adapter_runs) -> dict[str, NERPredictor]:
    return {name: NERPredictor.from_pretrained(run / "merged") for name, run in tiny_adapter_runs.items()}


def spans(entities) -> list[tuple[str, int, int]]:
    return [
        (e["type"], e["start"], e["end"]) if isinstance(e, dict) else (e.type, e.start, e.end)
        for e in entities
    ]


def test_adapters_are_listed_with_labels_base_size_and_whether_loaded(client, tiny_roberta_dir):
    data = client.get("/adapters").json()
    assert data["default"] == "general"
    by_name = {a["name"]: a for a in data["adapters"]}
    assert sorted(by_name) == ["general", "places"]
    assert by_name["places"]["types"] == ["LOC"] and set(by_name["general"]["types"]) == {"PER", "LOC", "ORG"}
    assert all(a["base_model"] == str(tiny_roberta_dir) and a["size_bytes"] > 1000 for a in by_name.values())


def test_each_request_gets_the_adapter_it_names(client, merged):
    for name in ("general", "places"):
        expected = spans(merged[name].predict(TEXT))
        assert expected, f"{name} finds nothing in TEXT: the comparison would hold for any adapter"
        body = client.post("/predict", json={"text": TEXT, "adapter": name}).json()
        assert spans(body["entities"]) == expected, name
    default = client.post("/predict", json={"text": TEXT}).json()
    assert spans(default["entities"]) == spans(merged["general"].predict(TEXT))
    loaded = {a["name"]: a["loaded"] for a in client.get("/adapters").json()["adapters"]}
    assert loaded == {"general": True, "places": True}


def test_a_batch_can_name_one_adapter_per_text(client, merged):
    texts = [TEXT, TEXT, "Ada Lovelace lives in Tromsø."]
    names = ["places", "general", None]
    body = client.post("/predict/batch", json={"texts": texts, "adapters": names}).json()
    want = [merged[n or "general"].predict(t) for t, n in zip(texts, names, strict=True)]
    assert all(want), "every text must have entities, or an empty answer would pass"
    assert [spans(r["entities"]) for r in body["results"]] == [spans(w) for w in want]
    one = client.post("/predict/batch", json={"texts": texts, "adapter": "places"}).json()
    assert [spans(r["entities"]) for r in one["results"]] == [
        spans(merged["places"].predict(t)) for t in texts
    ]


@pytest.mark.parametrize("name", ["medication", "../places", "places/../general", "README"])
def test_an_unknown_adapter_is_a_404_listing_the_available_ones(client, name):
    for path, body in [
        ("/predict", {"text": TEXT, "adapter": name}),
        ("/predict/batch", {"texts": [TEXT], "adapters": [name]}),
        ("/deidentify", {"text": TEXT, "adapter": name}),
    ]:
        response = client.post(path, json=body)
        assert response.status_code == 404, path
        assert response.json()["available"] == ["general", "places"]
        assert f"unknown adapter {name!r}" in response.json()["detail"]


def test_batch_adapter_fields_are_validated(client):
    both = client.post("/predict/batch", json={"texts": [TEXT], "adapter": "places", "adapters": ["places"]})
    assert both.status_code == 422 and "not both" in both.text
    short = client.post("/predict/batch", json={"texts": [TEXT, TEXT], "adapters": ["places"]})
    assert short.status_code == 422 and "adapters has 1 items but texts has 2" in short.text


def test_deidentify_uses_the_named_adapter(client, merged):
    body = client.post("/deidentify", json={"text": TEXT, "adapter": "places"}).json()
    assert body["items"], "nothing replaced: the type check below would hold for any adapter"
    assert spans(body["entities"]) == spans(merged["places"].predict(TEXT))
    assert all(item["type"] == "LOC" for item in body["items"])


def test_requests_per_adapter_are_counted(client):
    client.post("/predict", json={"text": TEXT, "adapter": "places"})
    metrics = client.get("/metrics").text
    assert 'loraner_adapter_texts_total{adapter="places"}' in metrics
    assert "medication" not in metrics  # unknown names never become label values


def test_a_single_model_service_answers_adapter_requests_with_404(tiny_roberta_dir):
    with running_server(create_app(ServeSettings(model=str(tiny_roberta_dir)))) as url:
        wait_ready(url)
        with httpx.Client(base_url=url, timeout=120) as c:
            assert c.get("/adapters").json() == {"adapters": [], "default": None}
            response = c.post("/predict", json={"text": TEXT, "adapter": "general"})
            assert response.status_code == 404 and "one model is served" in response.json()["detail"]
            assert c.post("/predict", json={"text": TEXT}).status_code == 200


def test_settings_need_a_base_for_adapters_and_adapters_for_a_base(monkeypatch):
    with pytest.raises(ConfigError, match="adapters need their base model"):
        ServeSettings.from_env(adapter=["phi=/a"])
    with pytest.raises(ConfigError, match="a base model needs adapters"):
        ServeSettings.from_env(base="/b")
    with pytest.raises(ConfigError, match="not both"):
        ServeSettings.from_env(model="/m", base="/b", adapters="/a")
    with pytest.raises(ConfigError, match="'phi' is not NAME=PATH"):
        ServeSettings.from_env(base="/b", adapter=["phi"])
    monkeypatch.setenv("LORANER_BASE", "/b")
    monkeypatch.setenv("LORANER_ADAPTER", "phi=/a/phi, general=/a/general")
    monkeypatch.setenv("LORANER_MAX_LOADED_ADAPTERS", "2")
    settings = ServeSettings.from_env()
    assert settings.adapter_sources() == {"phi": "/a/phi", "general": "/a/general"}
    assert settings.max_loaded_adapters == 2


@pytest.mark.browser
def test_the_demo_page_offers_the_adapters_and_sends_the_choice(chromium, server, merged):
    page = open_demo(chromium, server, model_name="2 adapters")
    page.wait_for_selector("#adapter-choice:not([hidden])")
    options = page.eval_on_selector_all("#adapter option", "xs => xs.map(x => x.value)")
    assert options == ["general", "places"] and page.input_value("#adapter") == "general"
    page.select_option("#adapter", "places")
    analyze(page, TEXT)
    shown = page.eval_on_selector_all("#highlighted mark.entity", "ms => ms.map(m => m.dataset.type)")
    assert shown and set(shown) == {"LOC"}  # the places adapter knows LOC only
    assert page.console_errors == []
