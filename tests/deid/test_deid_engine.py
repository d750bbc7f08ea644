"""The engine: exact offsets on any text, overlap resolution, batches, and what it stores."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from loraner.deid import DeidConfig, deidentify, deidentify_batch, validate_deid_config
from loraner.deid.dates import parse_date
from loraner.errors import DataError
from loraner.types import Entity, Span

ALL_TYPES = ["ID", "DATE", "LOC", "PATIENT", "AGE", "PHONE"]


def assert_offsets_exact(text: str, spans: list[Span], result) -> None:
    """Each replacement sits at its new offsets, and the text between spans is unchanged."""
    new = result.text
    prev_old, prev_new = 0, 0
    for item in result.items:
        assert new[item.new_start : item.new_end] == item.replacement
        assert text[prev_old : item.start] == new[prev_new : item.new_start]
        prev_old, prev_new = item.end, item.new_end
    assert text[prev_old:] == new[prev_new:]


MULTIBYTE = [
    "Pasient Kåre Ødegård (63 år) bor i Tromsø 🙂 og ble innlagt 10. september 1963 😷 tlf 912 34 567.",
    "患者 Kari Nordmann 住在 Oslo，电话 +47 912 34 567，出生 10.09.1963。👨‍👩‍👧 done",
    "🙂🙂 Åse Ærø 🙂 Bærum 🙂 63 🙂 1963-09-10 🙂",
]
PHI = {
    "Kåre Ødegård": "PATIENT", "Kari Nordmann": "PATIENT", "Åse Ærø": "PATIENT",
    "63 år": "AGE", "63": "AGE", "Tromsø": "LOC", "Oslo": "LOC", "Bærum": "LOC",
    "10. september 1963": "DATE", "10.09.1963": "DATE", "1963-09-10": "DATE",
    "912 34 567": "PHONE", "+47 912 34 567": "PHONE",
}  # fmt: skip


def phi_spans(text: str) -> list[Span]:
    spans = []
    for sub, label in PHI.items():
        start = text.find(sub)
        if start >= 0:
            spans.append(Span(start, start + len(sub), label))
    return spans  # deliberately unsorted and possibly overlapping ("63" inside "63 år")


@pytest.mark.parametrize("text", MULTIBYTE)
@pytest.mark.parametrize(
    "operators",
    [
        {"default": "replace"},
        {"default": "redact"},
        {"default": {"operator": "mask", "char": "█"}},
        {"default": "pseudonymize"},
        {"default": "replace", "per_type": {"PATIENT": "pseudonymize", "DATE": "pseudonymize"}},
    ],
)
def test_when_text_has_multibyte_chars_then_offsets_are_exact(text, operators):
    cfg = validate_deid_config(operators)
    spans = phi_spans(text)
    result = deidentify(text, spans, cfg)
    assert result.items, "fixture should contain PHI"
    assert_offsets_exact(text, spans, result)
    for sub in ("Kåre", "Nordmann", "Ærø", "Tromsø", "912 34 567"):
        # Whole words: a surrogate may contain the letters (a place "Kåredal" for "Bærum").
        assert not re.search(rf"(?<!\w){re.escape(sub)}(?!\w)", result.text), sub


def test_when_mask_then_length_is_kept_in_code_points():
    text = "Navn: Ørjan 🙂 Ødegård."
    span = Span(6, 21, "PATIENT")
    result = deidentify(text, [span], validate_deid_config({"default": "mask"}))
    assert result.text == "Navn: " + "*" * 15 + "."


@pytest.mark.parametrize(
    ("spans", "kept"),
    [
        # longer wins
        ([Span(0, 4, "PATIENT"), Span(0, 13, "PATIENT")], [(0, 13)]),
        ([Span(5, 13, "LOC"), Span(0, 13, "PATIENT")], [(0, 13)]),
        # same length: higher score wins, then the earlier start
        ([Entity("LOC", "Kari", 0, 4, 0.6), Entity("PATIENT", "Kari", 0, 4, 0.9)], [(0, 4)]),
        ([Span(0, 4, "PATIENT"), Span(2, 6, "LOC")], [(0, 4)]),
        # touching spans do not overlap
        ([Span(0, 4, "PATIENT"), Span(4, 13, "PATIENT")], [(0, 4), (4, 13)]),
        # empty spans are ignored
        ([Span(3, 3, "PATIENT")], []),
    ],
)
def test_when_spans_overlap_then_longer_or_higher_score_wins(spans, kept):
    text = "Kari Nordmann kom"
    result = deidentify(text, spans, DeidConfig())
    assert [(i.start, i.end) for i in result.items] == kept


def test_when_overlap_tie_on_length_then_higher_score_type_is_used():
    spans = [Entity("LOC", "Kari", 0, 4, 0.6), Entity("PATIENT", "Kari", 0, 4, 0.9)]
    assert deidentify("Kari kom", spans, DeidConfig()).text == "[PATIENT] kom"


def test_when_include_original_is_off_then_original_is_not_stored():
    text = "Kari kom"
    result = deidentify(text, [Span(0, 4, "PATIENT")], DeidConfig())
    assert result.items[0].original is None
    assert "original" not in result.items[0].to_dict()
    assert "Kari" not in str(result.to_dict())


def test_when_include_original_is_on_then_original_is_stored():
    result = deidentify("Kari kom", [Span(0, 4, "PATIENT")], DeidConfig(include_original=True))
    assert result.items[0].original == "Kari"
    assert result.items[0].to_dict()["original"] == "Kari"


@pytest.mark.parametrize(
    "span",
    [Span(-1, 3, "PATIENT"), Span(5, 99, "PATIENT"), Entity("PATIENT", "Ola", 0, 4), Span(3, 2, "PATIENT")],
)
def test_when_span_is_invalid_then_data_error_without_text(span):
    with pytest.raises(DataError) as err:
        deidentify("Kari kom", [span], DeidConfig())
    assert "Kari" not in str(err.value) and "Ola" not in str(err.value)


def test_when_type_is_unknown_then_default_operator_applies():
    result = deidentify("Email kari@example.no", [Span(6, 21, "EMAIL")], DeidConfig())
    assert result.text == "Email [EMAIL]"


def test_when_batch_then_names_are_consistent_across_documents():
    cfg = validate_deid_config({"per_type": {"PATIENT": "pseudonymize", "DATE": "pseudonymize"}})
    texts = ["Kari Nordmann 10.09.1963", "Ny notat: Kari Nordmann, 1963-09-20", "Ola Hansen"]
    spans = [
        [Span(0, 13, "PATIENT"), Span(14, 24, "DATE")],
        [Span(10, 23, "PATIENT"), Span(25, 35, "DATE")],
        [Span(0, 10, "PATIENT")],
    ]
    first, second, third = deidentify_batch(texts, spans, cfg)
    assert first.items[0].replacement == second.items[0].replacement
    assert third.items[0].replacement != first.items[0].replacement
    shift = [
        (parse_date(r.items[1].replacement).value - parse_date(t[s[1].start : s[1].end]).value).days
        for r, t, s in ((first, texts[0], spans[0]), (second, texts[1], spans[1]))
    ]
    assert shift[0] == shift[1] != 0  # no document keys: one offset for the batch


def test_when_batch_has_document_keys_then_offsets_follow_keys():
    cfg = validate_deid_config({"per_type": {"DATE": {"operator": "pseudonymize", "max_shift_days": 10000}}})
    texts = ["10.09.1963"] * 3
    spans = [[Span(0, 10, "DATE")]] * 3
    out = deidentify_batch(texts, spans, cfg, document_keys=["a", "b", "a"])
    assert out[0].text == out[2].text


def test_when_batch_lengths_differ_then_data_error():
    with pytest.raises(DataError, match="2 texts but 1 span lists"):
        deidentify_batch(["a", "b"], [[]], DeidConfig())


def test_when_deid_is_imported_then_torch_and_transformers_are_not():
    code = (
        "import sys, loraner.deid, loraner.deid.metrics, loraner.deid.recognizers;"
        "print([m for m in ('torch', 'transformers') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_when_recognizers_fill_model_gaps_then_pipeline_protects_all_phi():
    from loraner.deid import DeidEvaluator, fuse_spans, recognize

    text = "Kari Nordmann, fnr 15057543288, tlf +47 912 34 567, innlagt 10. september 1963."
    gold = [Span(0, 13, "PATIENT"), Span(19, 30, "ID"), Span(36, 50, "PHONE"), Span(60, 78, "DATE")]
    model = [Entity("PATIENT", "Kari Nordmann", 0, 13, 0.97), Entity("DATE", "150575", 19, 25, 0.4)]
    fused = fuse_spans(model, recognize(text))
    assert [(e.type, e.start, e.end) for e in fused] == [(s.label, s.start, s.end) for s in gold]
    cfg = validate_deid_config({"default": "pseudonymize"})
    result = deidentify(text, fused, cfg)
    ev = DeidEvaluator()
    ev.add(text, gold, fused, result)
    summary = ev.summary()
    assert summary["char_recall"] == 1.0 and summary["entity"]["micro"]["f1"] == 1.0
    for s in gold:
        assert text[s.start : s.end] not in result.text
