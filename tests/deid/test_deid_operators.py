"""Every operator, and the surrogates of ``pseudonymize``."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest

from loraner.deid import deidentify, valid_fnr, validate_deid_config
from loraner.deid.config import DeidConfig
from loraner.deid.dates import parse_date
from loraner.errors import ConfigError
from loraner.types import Span


def run_one(text: str, label: str, operator: dict, **top) -> tuple[str, str]:
    """De-identify the whole ``text`` as one span; (replacement, operator applied)."""
    cfg = validate_deid_config({"types": [label], "per_type": {label: operator}, **top})
    result = deidentify(text, [Span(0, len(text), label)], cfg)
    assert len(result.items) == 1
    return result.items[0].replacement, result.items[0].operator


def pseudo(text: str, label: str, **options) -> str:
    return run_one(text, label, {"operator": "pseudonymize", **options})[0]


@pytest.mark.parametrize(
    ("text", "operator", "expected"),
    [
        ("Kari Nordmann", {"operator": "replace"}, "[PATIENT]"),
        ("Kari Nordmann", {"operator": "replace", "template": "<{type}>"}, "<PATIENT>"),
        ("Kari", {"operator": "mask"}, "****"),
        ("Kari", {"operator": "mask", "char": "#"}, "####"),
        ("91234567", {"operator": "mask", "keep_last": 2}, "******67"),
        ("ab", {"operator": "mask", "keep_last": 5}, "**"),  # shorter than keep_last: masked completely
        ("Kari Nordmann", {"operator": "redact"}, ""),
        ("Kari Nordmann", {"operator": "keep"}, "Kari Nordmann"),
        ("Kari Nordmann", "redact", ""),  # shorthand
    ],
)
def test_when_simple_operator_applies_then_replacement_matches(text, operator, expected):
    assert run_one(text, "PATIENT", operator)[0] == expected


def test_when_hash_has_secret_then_output_is_truncated_keyed_hex(secret):
    first, op = run_one("Kari Nordmann", "PATIENT", {"operator": "hash", "length": 12})
    again, _ = run_one("kari   NORDMANN", "PATIENT", {"operator": "hash", "length": 12})
    assert op == "hash"
    assert re.fullmatch(r"[0-9a-f]{12}", first)
    assert again == first  # normalised: case and whitespace do not matter


def test_the_hash_is_hmac_sha256_of_the_normalised_span_under_the_secret(secret):
    """Checked against HMAC-SHA256 computed here with the standard library, not with loraner's helpers:
    key = the secret's UTF-8 bytes, message = ``hash`` + unit separator + the case-folded span with its
    whitespace collapsed."""
    expected = hmac.new(secret.encode("utf-8"), b"hash\x1fkari nordmann", hashlib.sha256).hexdigest()
    assert run_one(" Kari\n NORDMANN", "PATIENT", {"operator": "hash", "length": 64})[0] == expected
    assert run_one("Kari Nordmann", "PATIENT", {"operator": "hash"})[0] == expected[:16]  # default length
    non_ascii = hmac.new(secret.encode(), "hash\x1fåse bø".encode(), hashlib.sha256).hexdigest()
    assert run_one("ÅSE Bø", "PATIENT", {"operator": "hash", "length": 64})[0] == non_ascii


def test_the_keyed_pseudonym_seed_is_hmac_sha256_of_its_parts():
    """The seed of keyed (consistent) pseudonyms: the first 8 bytes, big-endian, of HMAC-SHA256 over the
    parts joined by the unit separator; computed here with the standard library."""
    from loraner.deid.surrogates import keyed_int

    key = b"unit-test-secret-0123456789abcdef"
    digest = hmac.new(key, b"name\x1fkari nordmann", hashlib.sha256).digest()
    assert keyed_int(key, "name", "kari nordmann") == int.from_bytes(digest[:8], "big")


def test_when_secret_changes_then_hash_changes(monkeypatch):
    outputs = set()
    for value in ("secret-one-xxxxxxxx", "secret-two-xxxxxxxx"):
        monkeypatch.setenv("LORANER_DEID_SECRET", value)
        outputs.add(run_one("Kari", "PATIENT", {"operator": "hash"})[0])
    assert len(outputs) == 2


def test_when_hash_template_used_then_type_and_hash_are_filled(secret):
    out, _ = run_one("Kari", "PATIENT", {"operator": "hash", "template": "[{type}:{hash}]", "length": 8})
    assert re.fullmatch(r"\[PATIENT:[0-9a-f]{8}\]", out)


def test_when_hash_secret_missing_then_config_error_names_variable(no_secret):
    with pytest.raises(ConfigError, match=r"LORANER_DEID_SECRET.*never falls back"):
        run_one("Kari", "PATIENT", {"operator": "hash"})


def test_when_secret_env_renamed_then_hash_reads_that_variable(monkeypatch, no_secret):
    monkeypatch.setenv("MY_DEID_KEY", "another-secret-value")
    out, _ = run_one("Kari", "PATIENT", {"operator": "hash"}, secret_env="MY_DEID_KEY")
    assert re.fullmatch(r"[0-9a-f]{16}", out)


# --- pseudonymize ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("original", "pattern"),
    [
        ("Kari", r"[^\W\d_]+"),
        ("Kari Nordmann", r"[^\W\d_]+ [^\W\d_]+"),
        ("Nordmann, Kari", r"[^\W\d_]+, [^\W\d_]+"),
        ("K. Nordmann", r"[A-Z]\. [^\W\d_]+"),
        ("Anne-Lise Berg", r"[^\W\d_]+-[^\W\d_]+ [^\W\d_]+"),
        ("KARI NORDMANN", r"[^\W\d_a-zæøå]+ [^\W\d_a-zæøå]+"),
    ],
)
@pytest.mark.parametrize("locale", ["nb_NO", "en_US"])
def test_when_name_is_pseudonymized_then_shape_is_kept(original, pattern, locale):
    out = pseudo(original, "PATIENT", locale=locale)
    assert re.fullmatch(pattern, out), out
    assert out.casefold() != original.casefold()


@pytest.mark.parametrize(
    ("original", "pattern"),
    [
        ("91234567", r"9\d{7}"),
        ("912 34 567", r"9\d\d \d\d \d\d\d"),
        ("+47 912 34 567", r"\+47 9\d\d \d\d \d\d\d"),
        ("0047 22 33 44 55", r"0047 2\d \d\d \d\d \d\d"),
        ("+4791234567", r"\+479\d{7}"),
        ("(+47) 9123 4567", r"\(\+47\) 9\d{3} \d{4}"),
        ("+1 (555) 123-4567", r"\+1 \(5\d\d\) \d{3}-\d{4}"),
    ],
)
def test_when_phone_is_pseudonymized_then_grouping_and_prefix_are_kept(original, pattern):
    out = pseudo(original, "PHONE")
    assert re.fullmatch(pattern, out), out
    assert out != original


@pytest.mark.parametrize(
    ("original", "pattern"),
    [
        ("12345", r"[1-9]\d{4}"),
        ("0123-4567", r"\d{4}-\d{4}"),
        ("AB123456", r"[A-Z]{2}\d{6}"),
        ("pas-77x", r"[a-z]{3}-\d\d[a-z]"),
    ],
)
def test_when_id_is_pseudonymized_then_length_and_classes_are_kept(original, pattern):
    out = pseudo(original, "ID")
    assert re.fullmatch(pattern, out), out
    assert len(out) == len(original)


@pytest.mark.parametrize(
    ("original", "spaced", "d_number"),
    [("01019012345", False, False), ("010190 12345", True, False), ("41019012345", False, True)],
)
def test_when_fnr_is_pseudonymized_then_surrogate_is_valid_fnr(original, spaced, d_number):
    out = pseudo(original, "ID")
    assert valid_fnr(out), out
    assert (out[6] == " ") == spaced
    assert (int(out[0]) >= 4) == d_number


@pytest.mark.parametrize(("original", "value"), [("63", 63), ("63 år", 63), ("a 7-year-old", 7), ("0", 0)])
def test_when_age_is_pseudonymized_then_it_moves_a_little(original, value):
    out = pseudo(original, "AGE", age_jitter=3)
    new = int(re.search(r"\d+", out).group())
    assert 0 < abs(new - value) <= 3 or (value == 0 and 0 < new <= 3)
    assert re.sub(r"\d+", "N", out) == re.sub(r"\d+", "N", original)


def test_when_age_is_over_89_then_it_is_aggregated():
    assert pseudo("93 år", "AGE") == "90+ år"


@pytest.mark.parametrize(
    ("original", "check"),
    [
        ("Oslo", lambda out: out[:1].isupper()),
        ("Haukeland universitetssjukehus", lambda out: out.endswith(" universitetssjukehus")),
        ("St. Olavs hospital", lambda out: out.endswith(" hospital")),
        ("Rikshospitalet", lambda out: out.endswith(" sykehus")),
        ("0155 Oslo", lambda out: re.fullmatch(r"\d{4} .+", out)),
        ("Storgata 5", lambda out: re.search(r"\d", out)),
    ],
)
def test_when_location_is_pseudonymized_then_kind_of_place_is_kept(original, check):
    out = pseudo(original, "LOC")
    assert check(out), out
    assert out != original


def test_when_type_has_no_generator_then_pseudonymize_falls_back_to_replace():
    assert run_one("kardiolog", "PROFESSION", {"operator": "pseudonymize"}) == ("[PROFESSION]", "replace")


def test_when_date_is_unparseable_then_pseudonymize_falls_back_to_replace():
    out = run_one("forrige mandag", "DATE", {"operator": "pseudonymize", "fallback_template": "<{type}>"})
    assert out == ("<DATE>", "replace")


@pytest.mark.parametrize("original", ["10. september 1963", "10.09.1963", "1963-09-10", "September 10, 1963"])
def test_when_date_is_pseudonymized_then_it_is_shifted_within_range(original):
    out = pseudo(original, "DATE", min_shift_days=5, max_shift_days=20)
    before, after = parse_date(original), parse_date(out)
    assert before is not None and after is not None, out
    assert 5 <= abs((after.value - before.value).days) <= 20
    assert before.layout == after.layout


def test_when_names_repeat_in_document_then_surrogates_are_consistent(span_of):
    text = "Kari Nordmann kom. Så kom KARI  nordmann, og Ola Hansen. Kari er bedre. Nordmann reiser."
    spans = [
        span_of(text, "Kari Nordmann", "PATIENT"),
        span_of(text, "KARI  nordmann", "PATIENT"),
        span_of(text, "Ola Hansen", "PATIENT"),
        span_of(text, "Kari", "PATIENT", nth=1),
        span_of(text, "Nordmann", "PATIENT", nth=1),
    ]
    cfg = validate_deid_config({"per_type": {"PATIENT": "pseudonymize"}})
    items = deidentify(text, spans, cfg).items
    first, shouting, other, given, family = (i.replacement for i in items)
    given_name, family_name = first.split()
    assert shouting == f"{given_name.upper()}  {family_name.lower()}"  # same person; case, spacing kept
    assert other != first
    assert given == given_name  # a repeated part maps like it did inside the full name
    assert family == family_name


def test_when_dates_in_document_then_all_share_one_offset(span_of):
    text = "Innlagt 10.09.1963, utskrevet 20. september 1963, kontroll 1963-10-10."
    spans = [span_of(text, s, "DATE") for s in ("10.09.1963", "20. september 1963", "1963-10-10")]
    cfg = validate_deid_config({"per_type": {"DATE": "pseudonymize"}})
    items = deidentify(text, spans, cfg).items
    shifts = {(parse_date(i.replacement).value - parse_date(text[i.start : i.end]).value).days for i in items}
    assert len(shifts) == 1 and 0 not in shifts


def test_when_not_keyed_then_surrogates_differ_across_documents(span_of):
    cfg = DeidConfig.model_validate({"per_type": {"PATIENT": "pseudonymize"}})
    text = "Kari Nordmann"
    outs = {deidentify(text, [span_of(text, text, "PATIENT")], cfg).text for _ in range(6)}
    assert len(outs) > 1


def test_when_keyed_then_surrogates_and_offsets_repeat_across_documents(secret, span_of):
    cfg = validate_deid_config(
        {"per_type": {"PATIENT": "pseudonymize", "DATE": "pseudonymize"}, "consistent_across_documents": True}
    )
    text = "Kari Nordmann, 10.09.1963"
    spans = [span_of(text, "Kari Nordmann", "PATIENT"), span_of(text, "10.09.1963", "DATE")]
    outs = {deidentify(text, spans, cfg, document_key="patient-1").text for _ in range(3)}
    assert len(outs) == 1
    other_key = deidentify(text, spans, cfg, document_key="patient-2").text
    assert other_key.split(",")[0] == next(iter(outs)).split(",")[0]  # names do not depend on the key


def test_when_keyed_without_secret_then_config_error(no_secret, span_of):
    cfg = validate_deid_config({"per_type": {"PATIENT": "pseudonymize"}, "consistent_across_documents": True})
    with pytest.raises(ConfigError, match="consistent_across_documents needs a secret"):
        deidentify("Kari", [Span(0, 4, "PATIENT")], cfg)


@pytest.mark.parametrize(
    ("first", "second", "label"),
    [
        ("912 34 567", "91234567", "PHONE"),
        ("+47 912 34 567", "912-34-567", "PHONE"),
        ("15057543288", "150575 43288", "ID"),
        ("AB-1234", "ab 1234", "ID"),
        ("63", "63 år", "AGE"),
    ],
)
def test_when_same_value_is_written_differently_then_surrogate_digits_agree(first, second, label):
    text = f"{first} og {second}"
    spans = [Span(0, len(first), label), Span(len(first) + 4, len(text), label)]
    cfg = validate_deid_config({"per_type": {label: "pseudonymize"}})
    a, b = (i.replacement for i in deidentify(text, spans, cfg).items)
    assert re.sub(r"\D", "", a)[-6:] == re.sub(r"\D", "", b)[-6:]


def test_when_many_patients_then_no_two_share_a_surrogate():
    names = [f"Pasient{chr(65 + i)} Etternavn{chr(65 + i)}" for i in range(20)]
    text = ", ".join(names)
    spans, pos = [], 0
    for name in names:
        spans.append(Span(pos, pos + len(name), "PATIENT"))
        pos += len(name) + 2
    cfg = validate_deid_config({"per_type": {"PATIENT": "pseudonymize"}})
    out = [i.replacement for i in deidentify(text, spans, cfg).items]
    assert len(set(out)) == len(out)
