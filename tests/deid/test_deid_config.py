"""Config loading: the shipped file, shorthand, and clear errors for every typo."""

from __future__ import annotations

from pathlib import Path

import pytest

from loraner.deid import DeidConfig, deidentify, load_deid_config, resolve_secret, validate_deid_config
from loraner.deid.operators import HashOperator, MaskOperator, PseudonymizeOperator, ReplaceOperator
from loraner.errors import ConfigError
from loraner.types import Span

REPO = Path(__file__).resolve().parents[2]


def test_when_shipped_config_loads_then_it_is_valid():
    cfg = load_deid_config(REPO / "configs" / "deid.yaml")
    assert set(cfg.types) == {"ID", "DATE", "LOC", "PATIENT", "AGE", "PHONE"}
    assert isinstance(cfg.operator_for("PATIENT"), PseudonymizeOperator)
    assert isinstance(cfg.operator_for("SOMETHING_ELSE"), ReplaceOperator)
    assert cfg.recognizers.enabled


def test_when_config_is_empty_then_defaults_replace_everything():
    cfg = validate_deid_config(None)
    assert cfg == DeidConfig()
    assert deidentify("Kari kom", [Span(0, 4, "PATIENT")], cfg).text == "[PATIENT] kom"


def test_when_shorthand_is_used_then_it_expands():
    cfg = validate_deid_config({"default": "mask", "per_type": {"ID": "hash"}})
    assert isinstance(cfg.default, MaskOperator)
    assert isinstance(cfg.per_type["ID"], HashOperator)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"per_type": {"PATIENT": {"operator": "scramble"}}},
            "per_type.PATIENT: unknown operator 'scramble'",
        ),
        ({"default": "blur"}, "default: unknown operator 'blur'; known: replace, mask"),
        (
            {"per_type": {"PATIENTS": "replace"}},
            "unknown entity type 'PATIENTS' in per_type; known: AGE, DATE",
        ),
        ({"per_type": {"ID": {"operator": "mask", "chars": "#"}}}, "per_type.ID: unknown field 'chars'"),
        ({"default": {"operator": "replace", "tmpl": "x"}}, "default: unknown field 'tmpl'"),
        ({"recognisers": {"enabled": True}}, "(top level): unknown field 'recognisers'"),
        ({"recognizers": {"phones": True}}, "recognizers: unknown field 'phones'"),
        ({"recognizers": {"labels": {"email": "EMAIL"}}}, "unknown recogniser 'email'"),
        ({"per_type": {"ID": {"template": "x"}}}, "per_type.ID: missing 'operator'"),
        ({"default": {"operator": "replace", "template": "[{label}]"}}, "unknown placeholder(s) ['label']"),
        ({"default": {"operator": "mask", "char": "**"}}, "default.char"),
        ({"default": {"operator": "hash", "length": 4}}, "default.length"),
        ({"default": {"operator": "pseudonymize", "locale": "sv_SE"}}, "default.locale"),
        (
            {"default": {"operator": "pseudonymize", "min_shift_days": 30, "max_shift_days": 10}},
            "min_shift_days (30) exceeds max_shift_days (10)",
        ),
        ({"o_threshold": 1.5}, "o_threshold"),  # above the range
        ({"o_threshold": 0}, "o_threshold"),  # P(O) < 0 never holds: nothing would ever be PHI
        ({"threshold": 0.5}, "renamed o_threshold"),  # the old name says where it went
        ({"secret_env": "NOT A NAME"}, "not a valid environment variable name"),
        ({"types": []}, "types"),
    ],
)
def test_when_config_is_wrong_then_error_names_the_field(raw, message):
    with pytest.raises(ConfigError) as err:
        validate_deid_config(raw, "deid.yaml")
    assert str(err.value).startswith("deid.yaml: ")
    assert message in str(err.value)


def test_when_type_is_added_to_types_then_per_type_accepts_it():
    cfg = validate_deid_config({"types": ["PATIENT", "EMAIL"], "per_type": {"EMAIL": "redact"}})
    assert cfg.operator_for("EMAIL").operator == "redact"


@pytest.mark.parametrize(
    ("body", "message"),
    [("default: [unclosed", "not valid YAML"), ("- a list", "top level must be a mapping")],
)
def test_when_file_is_broken_then_error_names_the_file(tmp_path, body, message):
    path = tmp_path / "deid.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as err:
        load_deid_config(path)
    assert str(path) in str(err.value)


def test_when_file_is_missing_then_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_deid_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("raw", "env", "ok"),
    [
        ({"per_type": {"ID": "hash"}}, {}, False),
        ({"per_type": {"ID": "hash"}}, {"LORANER_DEID_SECRET": ""}, False),
        ({"per_type": {"ID": "hash"}}, {"LORANER_DEID_SECRET": "s"}, True),
        ({"default": "hash", "secret_env": "K"}, {"LORANER_DEID_SECRET": "s"}, False),
        ({"default": "pseudonymize", "consistent_across_documents": True}, {}, False),
        ({"default": "pseudonymize"}, {}, True),
        ({"default": "replace", "consistent_across_documents": True}, {}, True),
    ],
)
def test_when_secret_is_needed_then_missing_secret_is_a_config_error(raw, env, ok):
    cfg = validate_deid_config(raw)
    if ok:
        resolve_secret(cfg, env)
    else:
        with pytest.raises(ConfigError, match="environment variable"):
            resolve_secret(cfg, env)


def test_when_hash_secret_missing_then_error_names_where_hash_is_configured():
    cfg = validate_deid_config({"per_type": {"ID": "hash"}})
    with pytest.raises(ConfigError, match=r"^per_type\.ID: the hash operator needs a secret"):
        resolve_secret(cfg, {})


def test_when_o_threshold_is_set_then_it_is_carried():
    assert validate_deid_config({"o_threshold": 0.3}).o_threshold == 0.3
    assert DeidConfig().o_threshold is None
