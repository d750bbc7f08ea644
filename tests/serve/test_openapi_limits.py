"""The OpenAPI schema states the limits a service's settings set (``schemas.Limits``), on the fields that
carry them, per app; the body models themselves stay configuration-free."""

from __future__ import annotations

from typing import Any

import pytest

from loraner.serve import ServeSettings, create_app
from loraner.serve.schemas import MAX_KEY_CHARS, BatchRequest, PredictRequest

NOT_BLANK_TEXT = {"type": "string", "minLength": 1, "pattern": r"\S"}


def components(**settings: Any) -> dict[str, Any]:
    app = create_app(ServeSettings(**settings), lambda s: None)  # nothing is loaded to build the schema
    return app.openapi()["components"]["schemas"]


def test_when_one_model_then_texts_batches_and_keys_are_bounded_and_only_null_names_an_adapter():
    schemas = components(model="/nowhere", max_text_chars=700, max_batch=5)
    text = {**NOT_BLANK_TEXT, "maxLength": 700}
    for name in ("PredictRequest", "DeidentifyRequest"):
        assert schemas[name]["properties"]["text"].items() >= text.items(), name
        assert schemas[name]["properties"]["adapter"]["type"] == "null", name
    for name in ("BatchRequest", "DeidentifyBatchRequest"):
        texts = schemas[name]["properties"]["texts"]
        assert (texts["minItems"], texts["maxItems"]) == (1, 5) and texts["items"] == text, name
        assert schemas[name]["properties"]["adapter"]["type"] == "null", name
        [per_text, _] = schemas[name]["properties"]["adapters"]["anyOf"]
        assert (per_text["minItems"], per_text["maxItems"], per_text["items"]) == (1, 5, {"type": "null"})
    [keys, null] = schemas["DeidentifyBatchRequest"]["properties"]["document_keys"]["anyOf"]
    assert keys["maxItems"] == 5 and null == {"type": "null"}
    assert {"type": "string", "maxLength": MAX_KEY_CHARS} in keys["items"]["anyOf"]
    # A part of a request text (an entity) has a text's limits too.
    assert schemas["EntityOut"]["properties"]["text"].items() >= text.items()


def test_when_adapters_have_a_default_then_adapter_fields_name_them_and_may_be_null():
    schemas = components(
        base="/nowhere", adapter=["people=/a", "places=/b"], default_adapter="people", max_batch=3
    )
    choice = [{"type": "string", "enum": ["people", "places"]}, {"type": "null"}]
    for name in ("PredictRequest", "BatchRequest", "DeidentifyRequest", "DeidentifyBatchRequest"):
        assert schemas[name]["properties"]["adapter"]["anyOf"] == choice, name
        assert "adapter" not in schemas[name].get("required", []) and "anyOf" not in schemas[name], name
    [per_text, null] = schemas["BatchRequest"]["properties"]["adapters"]["anyOf"]
    assert per_text == {"type": "array", "items": {"anyOf": choice}, "minItems": 1, "maxItems": 3}
    assert null == {"type": "null"}


# Bodies and whether the service takes them with two adapters and no default (the server's rules:
# deps.text_batch, Service.check_adapters, BatchRequest's one adapter choice).
WITHOUT_DEFAULT = [
    ("PredictRequest", {"text": "Oslo", "adapter": "places"}, True),
    ("PredictRequest", {"text": "Oslo"}, False),
    ("PredictRequest", {"text": "Oslo", "adapter": None}, False),
    ("PredictRequest", {"text": "Oslo", "adapter": "other"}, False),
    ("BatchRequest", {"texts": ["Oslo"], "adapter": "places"}, True),
    ("BatchRequest", {"texts": ["Oslo"], "adapters": ["places"]}, True),
    ("BatchRequest", {"texts": ["Oslo"], "adapter": None, "adapters": ["people"]}, True),
    ("BatchRequest", {"texts": ["Oslo"], "adapter": "places", "adapters": None}, True),
    ("BatchRequest", {"texts": ["Oslo"]}, False),
    ("BatchRequest", {"texts": ["Oslo"], "adapter": None, "adapters": None}, False),
    ("BatchRequest", {"texts": ["Oslo"], "adapters": [None]}, False),
    ("BatchRequest", {"texts": ["Oslo"], "adapter": "places", "adapters": ["places"]}, False),
    ("DeidentifyBatchRequest", {"texts": ["Oslo"], "adapters": ["people"]}, True),
    ("DeidentifyBatchRequest", {"texts": ["Oslo"], "document_keys": ["k"]}, False),
]


def test_without_a_default_adapter_the_schema_requires_requests_to_name_one():
    jsonschema = pytest.importorskip("jsonschema")
    app = create_app(ServeSettings(base="/nowhere", adapter=["people=/a", "places=/b"]), lambda s: None)
    spec = app.openapi()
    for name in ("PredictRequest", "DeidentifyRequest"):
        assert "adapter" in spec["components"]["schemas"][name]["required"], name
    for name, body, valid in WITHOUT_DEFAULT:
        schema = {**spec["components"]["schemas"][name], "components": spec["components"]}
        errors = list(jsonschema.Draft202012Validator(schema).iter_errors(body))
        assert (not errors) == valid, (name, body, [e.message for e in errors])
    for name in ("PredictRequest", "BatchRequest", "DeidentifyRequest", "DeidentifyBatchRequest"):
        schema = {**spec["components"]["schemas"][name], "components": spec["components"]}
        for example in schema["examples"]:  # the examples schemathesis and /docs send are valid
            assert not list(jsonschema.Draft202012Validator(schema).iter_errors(example)), (name, example)


def test_when_two_apps_differ_then_each_schema_states_its_own_limits():
    first = create_app(ServeSettings(model="/nowhere", max_text_chars=11), lambda s: None)
    second = create_app(ServeSettings(model="/nowhere", max_text_chars=22), lambda s: None)
    texts = [
        app.openapi()["components"]["schemas"]["PredictRequest"]["properties"]["text"]
        for app in (first, second)
    ]
    assert [text["maxLength"] for text in texts] == [11, 22]


@pytest.mark.parametrize(
    ("model", "field"),
    [
        (PredictRequest, "text"),  # the single text
        (BatchRequest, "texts"),  # the batch
    ],
)
def test_when_outside_an_app_then_the_models_state_and_enforce_no_configured_limit(model, field):
    schema = model.model_json_schema()["properties"][field]
    stated = {**schema, **schema.get("items", {})}
    assert "maxLength" not in stated and "maxItems" not in stated
    # The configured limits are the routes' to check (a 422 naming the limit); the models take any length.
    long = "x" * 200_000
    body = model(text=long) if field == "text" else model(texts=[long] * 100)
    assert getattr(body, field)
