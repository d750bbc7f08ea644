"""Pattern recognisers (fødselsnummer checksum, phones, dates) and their fusion with model spans."""

from __future__ import annotations

import pytest

from loraner.deid import RecognizerConfig, fuse_spans, recognize, valid_fnr
from loraner.deid.recognizers import recognize_dates, recognize_fnr, recognize_phones
from loraner.types import Entity, Span

K1 = [3, 7, 6, 1, 8, 9, 4, 5, 2]
K2 = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2]


def control(digits: str, weights: list[int]) -> int | None:
    """The published algorithm, written out independently of the implementation."""
    k = 11 - sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11
    return {11: 0, 10: None}.get(k, k)


def with_controls(body: str) -> str:
    k1 = control(body, K1)
    assert k1 is not None
    k2 = control(body + str(k1), K2)
    assert k2 is not None
    return f"{body}{k1}{k2}"


# Birth date + individual number; D-numbers have day + 40.
VALID_BODIES = ["150575432", "311299876", "290200500", "150515432", "010100123", "410190123", "550575432"]


@pytest.mark.parametrize("body", VALID_BODIES)
def test_when_both_control_digits_match_then_fnr_is_valid(body):
    fnr = with_controls(body)
    assert valid_fnr(fnr)
    assert valid_fnr(f"{fnr[:6]} {fnr[6:]}")  # DDMMYY IIIKK


def test_hand_computed_examples():
    # 1·3+5·7+0·6+5·1+7·8+5·9+4·4+3·5+2·2 = 179; 179 % 11 = 3 → k1 = 8;
    # 1·5+5·4+0·3+5·2+7·7+5·6+4·5+3·4+2·3+8·2 = 168; 168 % 11 = 3 → k2 = 8.
    assert with_controls("150575432") == "15057543288"
    assert valid_fnr("15057543288")


@pytest.mark.parametrize(
    "bad",
    [
        "15057543289",  # k2 wrong
        "15057543298",  # k1 wrong (and so k2)
        "15057543278",
        "1505754328",  # 10 digits
        "150575432888",  # 12 digits
        "1505 7543288",  # space in the wrong place
        "15057543288 ",
        "1505754328a",
        "１５０５７５４３２８８",  # full-width digits are not ASCII digits
        with_controls("011390123"),  # month 13: checksums fine, date impossible
        with_controls("320190123"),  # day 32
        "00000000000",  # day 0
    ],
)
def test_when_checksum_or_date_is_wrong_then_fnr_is_invalid(bad):
    assert not valid_fnr(bad)


def test_when_text_contains_fnr_then_only_valid_ones_are_found():
    good = with_controls("150575432")
    text = f"fnr {good}, feil 15057543289, D-nr {with_controls('410190123')}, lang 1{good}"
    found = recognize_fnr(text)
    assert [e.text for e in found] == [good, with_controls("410190123")]
    assert all(e.type == "ID" and e.score >= 0.9 for e in found)


@pytest.mark.parametrize(
    ("text", "expected", "validated"),
    [
        ("ring 91234567 i dag", "91234567", True),  # keyword before
        ("nummer 91234567 i dag", "91234567", False),  # a bare 8-digit run is uncertain
        ("Tlf: 912 34 567.", "912 34 567", True),
        ("nås på 22 33 44 55", "22 33 44 55", False),
        ("nås på 9123 4567", "9123 4567", False),
        ("nås på +47 912 34 567", "+47 912 34 567", True),
        ("nås på 0047 91234567", "0047 91234567", True),
        ("nås på (+47) 22 33 44 55", "(+47) 22 33 44 55", True),
        ("call +44 20 7946 0958 now", "+44 20 7946 0958", True),
        ("call (555) 123-4567 now", "(555) 123-4567", False),
    ],
)
def test_when_text_has_phone_then_recognizer_finds_it(text, expected, validated):
    found = recognize(text, RecognizerConfig(fnr=False, date=False))
    assert [e.text for e in found] == [expected]
    assert (found[0].score >= 0.9) == validated


@pytest.mark.parametrize("text", ["konto 1234567890123", "pris 12345678.50", "ID12345678", "dato 10.09.1963"])
def test_when_digits_are_not_a_phone_then_no_phone_is_found(text):
    assert recognize_phones(text) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("innlagt 10. september 1963 med", "10. september 1963"),
        ("innlagt 10.09.1963 med", "10.09.1963"),
        ("innlagt 10/09/1963 med", "10/09/1963"),
        ("innlagt 1.9.63 med", "1.9.63"),
        ("innlagt 1963-09-10 med", "1963-09-10"),
        ("seen September 10. 1963 at", "September 10. 1963"),
        ("seen September 10, 1963 at", "September 10, 1963"),
        ("seen 10 Sep 2019 at", "10 Sep 2019"),
        ("seen Sept. 3rd, 2001 at", "Sept. 3rd, 2001"),
        ("kontroll i mars 2001.", "mars 2001"),
        ("kontroll 3. okt.", "3. okt"),
    ],
)
def test_when_text_has_date_then_recognizer_finds_it(text, expected):
    assert [e.text for e in recognize_dates(text)] == [expected]


@pytest.mark.parametrize(
    "text", ["32.01.2000", "13.13.2000 er feil", "kl 10.30", "versjon 1.2.3", "september"]
)
def test_when_text_has_no_real_date_then_none_is_found(text):
    assert recognize_dates(text) == []


def test_when_recognizers_overlap_then_one_span_per_region():
    good = with_controls("150575432")
    text = f"fnr {good} tlf +47 912 34 567 født 15.05.1975"
    found = recognize(text)
    assert [(e.type, e.text) for e in found] == [
        ("ID", good),
        ("PHONE", "+47 912 34 567"),
        ("DATE", "15.05.1975"),
    ]


def test_when_labels_are_configured_then_recognizers_use_them():
    cfg = RecognizerConfig(labels={"phone": "PHONE_NUMBER"})
    assert recognize("tlf 91234567", cfg)[0].type == "PHONE_NUMBER"


# --- fusion ------------------------------------------------------------------------------------------------

FNR = with_controls("150575432")
TEXT = f"Kari fnr {FNR} tlf 912 34 567 den 10. september 1963."


def ent(sub: str, label: str, score: float = 0.8, text: str = TEXT) -> Entity:
    start = text.index(sub)
    return Entity(label, sub, start, start + len(sub), score)


@pytest.mark.parametrize(
    ("model", "pattern", "expected"),
    [
        # no overlap: the pattern span is added
        (
            [ent("Kari", "PATIENT")],
            [ent("912 34 567", "PHONE", 0.95)],
            [("PATIENT", "Kari"), ("PHONE", "912 34 567")],
        ),
        # same type: union
        (
            [ent("10. september", "DATE")],
            [ent("september 1963", "DATE", 0.95)],
            [("DATE", "10. september 1963")],
        ),
        # different type, validated ID containing the model span: pattern wins
        ([ent(FNR[:6], "DATE")], [ent(FNR, "ID", 0.99)], [("ID", FNR)]),
        # different type, pattern not validated: model wins
        ([ent("912 34 567", "ID")], [ent("912 34 567", "PHONE", 0.75)], [("ID", "912 34 567")]),
        # validated but only partly overlapping: model wins
        ([ent(f"{FNR} tlf", "LOC")], [ent(FNR, "ID", 0.99)], [("LOC", f"{FNR} tlf")]),
        # a validated DATE is not an ID/PHONE: model wins
        ([ent("10.", "AGE")], [ent("10. september 1963", "DATE", 0.95)], [("AGE", "10.")]),
        # pattern spans two model spans: one same-type (merged), one contained other-type (overridden)
        (
            [ent("912", "PHONE", 0.6), ent("34 567", "ID", 0.6)],
            [ent("912 34 567", "PHONE", 0.95)],
            [("PHONE", "912 34 567")],
        ),
        # blocked by one model span → dropped entirely, both model spans stay
        (
            [ent("912", "PHONE"), ent("567 den", "LOC")],
            [ent("912 34 567", "PHONE", 0.95)],
            [("PHONE", "912"), ("LOC", "567 den")],
        ),
    ],
)
def test_when_spans_are_fused_then_rule_is_applied(model, pattern, expected):
    fused = fuse_spans(model, pattern)
    assert [(e.type, e.text) for e in fused] == expected
    for e in fused:
        assert TEXT[e.start : e.end] == e.text


def test_when_same_type_spans_merge_then_score_is_max():
    fused = fuse_spans([ent("10. september", "DATE", 0.4)], [ent("september 1963", "DATE", 0.95)])
    assert fused[0].score == 0.95


def test_when_inputs_are_plain_spans_then_text_is_required():
    model = [Span(0, 4, "PATIENT")]
    with pytest.raises(TypeError, match="pass text="):
        fuse_spans(model, [])
    assert fuse_spans(model, [], text=TEXT)[0].text == "Kari"


def test_when_custom_validator_given_then_it_decides_overrides():
    model = [ent("912 34 567", "ID")]
    pattern = [ent("912 34 567", "TLF", 0.5)]
    fused = fuse_spans(model, pattern, validated=lambda e: e.type == "TLF")
    assert [(e.type, e.text) for e in fused] == [("TLF", "912 34 567")]
