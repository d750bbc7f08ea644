from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from loraner.data import load_splits
from loraner.data.nordeid import TAG_LABELS, parse_tagged_text, read_nor_deid_file, render_scenario
from loraner.errors import DataError
from loraner.settings import DataConfig
from loraner.types import SpanExample


def _pairs(example: SpanExample) -> list[tuple[str, str]]:
    return [(s.label, example.text[s.start : s.end]) for s in example.spans]


@pytest.mark.parametrize(
    ("raw", "text", "pairs"),
    [
        # plain tags become spans, mapped to the clinical labels
        (
            "Pasient: <First_Name>Åse</First_Name> <Last_Name>Lie</Last_Name>, <Age>40</Age> år",
            "Pasient: Åse Lie, 40 år",
            [("PATIENT", "Åse"), ("PATIENT", "Lie"), ("AGE", "40")],
        ),
        # a Location nested in a Date: the outer Date is kept
        (
            "Født <Date><Location>Bodø</Location>, 1. mai 1950</Date>",
            "Født Bodø, 1. mai 1950",
            [("DATE", "Bodø, 1. mai 1950")],
        ),
        # unknown tags are stripped but their text is kept
        ("<b>Tlf:</b> <Phone_Number>99</Phone_Number><br>", "Tlf: 99", [("PHONE", "99")]),
        # whitespace inside a tag is not part of the span
        ("ID <Social_Security_Number> 0101 </Social_Security_Number>.", "ID  0101 .", [("ID", "0101")]),
        # an extra "<" before a tag, a close with "⟩", and a case variant of a known name
        (
            "<<Location>Vik</Location⟩ og <health_care_unit>Vik DPS</health_care_unit>",
            "Vik og Vik DPS",
            [("LOC", "Vik"), ("LOC", "Vik DPS")],
        ),
        # a close tag that runs into the next tag
        ("<Date><Location>Vik</Location</Date>", "Vik", [("DATE", "Vik")]),
        # an open tag never closed: removed, the text stays
        ("<Age>50 år, <Date>2020</Date>", "50 år, 2020", [("DATE", "2020")]),
        # angle-bracket text that is not tag-shaped stays as it is
        ("<dato må fylles ut>", "<dato må fylles ut>", []),
    ],
)
def test_when_tagged_note_then_clean_text_and_spans(
    raw: str, text: str, pairs: list[tuple[str, str]]
) -> None:
    clean, spans, _ = parse_tagged_text(raw)
    assert clean == text
    assert [(s.label, clean[s.start : s.end]) for s in spans] == pairs


def test_when_fixture_notes_then_spans_match_and_repairs_counted(fixtures: Path) -> None:
    path = fixtures / "nordeid" / "training.json"
    with pytest.warns(UserWarning) as record:
        examples = read_nor_deid_file(path)
    assert len(examples) == 3
    assert _pairs(examples[0]) == [
        ("PATIENT", "Ingrid"),
        ("PATIENT", "Fjellheim"),
        ("ID", "12345678901"),
        ("PHONE", "+47 987 65 432"),
        ("AGE", "54"),
        ("DATE", "Røros, 3. mars 1970"),
        ("LOC", "Sykehuset Nordfjell, medisinsk poliklinikk"),
        ("DATE", "14.02.2024"),
    ]
    assert _pairs(examples[1]) == [
        ("PATIENT", "Sverre"),
        ("PATIENT", "Ødegård"),
        ("AGE", "33"),
        ("LOC", "Legevakten Fjordby"),
        ("DATE", "Fjordby"),
    ]
    assert "<" not in examples[1].text.replace("⟩", "")
    [warning] = [str(w.message) for w in record]
    assert warning.startswith(str(path))
    for part in ("2 nested", "4 unknown tags", "2 unbalanced tags", "1 empty spans"):
        assert part in warning


def test_when_structured_view_then_key_value_lines_with_phi_spans(fixtures: Path) -> None:
    [example] = read_nor_deid_file(fixtures / "nordeid" / "validation.json", view="structured")
    assert "givenName: Åsta\n" in example.text
    assert "findings: regular pulse, no pain" in example.text
    assert "locale" not in example.text
    assert _pairs(example) == [
        ("PATIENT", "Åsta"),
        ("PATIENT", "Lien"),
        ("AGE", "40"),
        ("PHONE", "90000000"),
        ("LOC", "Fjordby"),
        ("LOC", "Fjordby sykehus"),
        ("DATE", "January 01. 1984"),
        ("DATE", "January 01. 2024"),
        ("ID", "45678901234"),
    ]


def test_when_scenario_rendered_then_non_phi_has_no_span() -> None:
    text, spans = render_scenario({"noteType": "referral", "givenName": "Ola", "diagnosis": "J18.9"})
    assert text == "noteType: referral\ngivenName: Ola\ndiagnosis: J18.9"
    assert [text[s.start : s.end] for s in spans] == ["Ola"]


def test_when_generic_splits_then_nor_deid_file_names_used(fixtures: Path) -> None:
    with pytest.warns(UserWarning):
        splits = load_splits(DataConfig(format="nor-deid", path=str(fixtures / "nordeid")))
    assert {k: len(v) for k, v in splits.items()} == {"train": 3, "validation": 1, "test": 1}
    assert _pairs(splits["test"][0])[-1] == ("ID", "010116 12345")  # type: ignore[arg-type]


def test_when_join_spans_then_first_and_last_name_become_one_patient(fixtures: Path) -> None:
    with pytest.warns(UserWarning):
        parts = load_splits(DataConfig(format="nor-deid", path=str(fixtures / "nordeid")))
    with pytest.warns(UserWarning):
        joined = load_splits(
            DataConfig(format="nor-deid", path=str(fixtures / "nordeid"), join_spans=["PATIENT"])
        )
    names = [p for ex in parts["train"] for p in _pairs(ex) if p[0] == "PATIENT"]  # type: ignore[arg-type]
    full = [p for ex in joined["train"] for p in _pairs(ex) if p[0] == "PATIENT"]  # type: ignore[arg-type]
    assert ("PATIENT", "Ingrid") in names and ("PATIENT", "Fjellheim") in names
    assert ("PATIENT", "Ingrid Fjellheim") in full and ("PATIENT", "Ingrid") not in full
    assert len(full) < len(names)
    others = [[p for p in _pairs(ex) if p[0] != "PATIENT"] for ex in parts["train"]]  # type: ignore[arg-type]
    assert others == [[p for p in _pairs(ex) if p[0] != "PATIENT"] for ex in joined["train"]]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("file", "where", "fragment"),
    [
        ("nordeid_missing_results.json", ": ", "missing list 'results'"),
        ("nordeid_bad_json.json", ":3: ", "not valid JSON"),
    ],
)
def test_when_nor_deid_file_bad_then_error_names_file(
    fixtures: Path, file: str, where: str, fragment: str
) -> None:
    path = fixtures / "bad" / file
    with pytest.raises(DataError, match=fragment) as info:
        read_nor_deid_file(path)
    assert str(info.value).startswith(f"{path}{where}")


# --- the real files (skipped without ../shared) --------------------------------------------------

_SIMPLE_TAG = re.compile(r"<(" + "|".join(TAG_LABELS) + r")>([^<]*)</\1>")


@pytest.mark.shared
@pytest.mark.parametrize(("file", "count"), [("training", 1000), ("validation", 100), ("holdout", 100)])
def test_when_real_nor_deid_then_counts_and_span_texts_match_tags(
    shared_data: Callable[..., Path], file: str, count: int
) -> None:
    path = shared_data("nor-deid-synth", f"{file}.json")
    with pytest.warns(UserWarning) as record:
        examples = read_nor_deid_file(path)
    assert len(examples) == count
    nested = int(re.search(r"(\d+) nested", str(record[0].message)).group(1))  # type: ignore[union-attr]
    raw = json.loads(path.read_text(encoding="utf-8"))["results"]
    missing = 0
    for example, note in zip(examples, raw, strict=True):
        for span in example.spans:
            assert 0 <= span.start < span.end <= len(example.text)
            assert example.text[span.start : span.end].strip() == example.text[span.start : span.end]
        # Every simply tagged text shows up as a span with that text and label, except those
        # dropped because they sat inside another span (counted in the warning).
        tagged = Counter((TAG_LABELS[m[1]], m[2].strip()) for m in _SIMPLE_TAG.finditer(note) if m[2].strip())
        found = Counter(_pairs(example))
        missing += sum((tagged - found).values())
    assert missing <= nested
