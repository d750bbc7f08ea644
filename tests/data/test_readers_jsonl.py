from __future__ import annotations

import json
from pathlib import Path

import pytest

from loraner.data import load_splits
from loraner.data.jsonl import read_span_file, write_span_jsonl
from loraner.errors import DataError
from loraner.settings import DataConfig
from loraner.types import Span, SpanExample


def _pairs(example: SpanExample) -> list[tuple[str, str]]:
    return [(s.label, example.text[s.start : s.end]) for s in example.spans]


def test_when_jsonl_then_text_spans_and_ids_read(fixtures: Path) -> None:
    with pytest.warns(UserWarning):
        examples = read_span_file(fixtures / "jsonl" / "train.jsonl")
    assert len(examples) == 4  # the blank line is not a record
    assert examples[0].id == "a1"
    assert _pairs(examples[0]) == [("PER", "Åse Nordmann"), ("LOC", "Tromsø")]
    assert examples[2].id == "4"  # no "id": the JSONL line number


@pytest.mark.parametrize(
    ("index", "expected"),
    [
        # a nested LOC inside an ORG: the longer (outer) ORG is kept
        (1, [("ORG", "Universitetet i Oslo"), ("LOC", "Oslo sentrum")]),
        # a longer span crossing two shorter ones wins over both
        (2, [("PER", "Sæther og Kjærsti"), ("LOC", "Gjøvik")]),
        # equal lengths: the earlier start wins, whatever the list order
        (3, [("PER", "Anna Berg")]),
    ],
)
def test_when_spans_overlap_then_longer_then_earlier_kept(
    fixtures: Path, index: int, expected: list[tuple[str, str]]
) -> None:
    with pytest.warns(UserWarning):
        examples = read_span_file(fixtures / "jsonl" / "train.jsonl")
    assert _pairs(examples[index]) == expected


def test_when_spans_overlap_then_one_warning_with_count(fixtures: Path) -> None:
    path = fixtures / "jsonl" / "train.jsonl"
    with pytest.warns(UserWarning) as record:
        read_span_file(path)
    messages = [str(w.message) for w in record]
    assert len(messages) == 1
    assert messages[0].startswith(f"{path}: 4 overlapping or nested spans dropped")


def test_when_json_list_then_records_read(fixtures: Path) -> None:
    examples = read_span_file(fixtures / "jsonl" / "validation.json")
    assert [ex.id for ex in examples] == ["v1", "v2"]
    assert _pairs(examples[0]) == [("LOC", "Bergen")]
    assert examples[1].spans == []


@pytest.mark.parametrize(
    ("file", "where", "fragment"),
    [
        ("bad_json.jsonl", ":2: ", "not valid JSON"),
        ("missing_text.jsonl", ":2: ", "missing key 'text'"),
        ("missing_label.jsonl", ":1: ", "span 0: missing key 'label'"),
        ("outside.jsonl", ":3: ", "outside the text"),  # line 2 is blank; the record is on line 3
        ("start_ge_end.jsonl", ":2: ", "start 2 must be below end 2"),
        ("non_int.jsonl", ":1: ", "'start' must be an integer"),
        ("float_offset.jsonl", ":2: ", "'end' must be an integer"),
        ("not_object.jsonl", ":2: ", "expected a JSON object"),
        ("empty.jsonl", ": ", "no records"),
        ("record_error.json", ": record 1: ", "missing key 'spans'"),
        ("not_json.json", ":3: ", "not valid JSON"),
    ],
)
def test_when_span_file_bad_then_error_names_file_and_line_or_record(
    fixtures: Path, file: str, where: str, fragment: str
) -> None:
    path = fixtures / "bad" / file
    with pytest.raises(DataError, match=fragment) as info:
        read_span_file(path)
    assert str(info.value).startswith(f"{path}{where}")


def test_when_jsonl_format_then_splits_found_by_extension(fixtures: Path) -> None:
    cfg = DataConfig(format="jsonl", path=str(fixtures / "jsonl"))
    with pytest.warns(UserWarning):
        splits = load_splits(cfg)
    assert {k: len(v) for k, v in splits.items()} == {"train": 4, "validation": 2, "test": 1}


def test_when_label_map_then_labels_renamed_or_dropped(fixtures: Path) -> None:
    cfg = DataConfig(format="jsonl", path=str(fixtures / "jsonl"), label_map={"PER": "PATIENT", "LOC": "O"})
    with pytest.warns(UserWarning):
        splits = load_splits(cfg)
    first = splits["train"][0]
    assert isinstance(first, SpanExample)
    assert _pairs(first) == [("PATIENT", "Åse Nordmann")]


def test_when_written_then_read_back_identical(tmp_path: Path) -> None:
    examples = [
        SpanExample(text="Bjørn bor i Ålesund.", spans=[Span(0, 5, "PER"), Span(12, 19, "LOC")], id="x1"),
        SpanExample(text="Ingen.", spans=[], id="x2"),
    ]
    path = write_span_jsonl(tmp_path / "out" / "data.jsonl", examples)
    assert "Ålesund" in path.read_text(encoding="utf-8")  # kept readable, not \u-escaped
    assert read_span_file(path) == examples


def test_when_texts_hold_unicode_line_separators_then_jsonl_round_trips(tmp_path: Path) -> None:
    text = "Kari\u2028Nordmann\u2029bor i\u0085Oslo\x1c."
    examples = [SpanExample(text, [Span(0, 4, "PER"), Span(20, 24, "LOC")], id="a")]
    path = write_span_jsonl(tmp_path / "x.jsonl", examples)
    raw = path.read_text(encoding="utf-8")
    assert raw.count("\n") == 1 and "\u2028" not in raw and "\u0085" not in raw  # escaped, one line
    [back] = read_span_file(path)
    assert back.text == text and back.spans == examples[0].spans


def test_when_a_raw_u2028_stands_inside_a_record_then_it_is_still_one_record(tmp_path: Path) -> None:
    path = tmp_path / "raw.jsonl"
    path.write_text('{"text": "a\u2028b", "spans": []}\n{"text": "c", "spans": []}\n', encoding="utf-8")
    assert [e.text for e in read_span_file(path)] == ["a\u2028b", "c"]


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_when_json_is_nested_absurdly_deep_then_one_line_error(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"deep{suffix}"
    path.write_text('{"text": "a", "spans": []}\n' * (suffix == ".jsonl") + "[" * 100_000 + "]" * 100_000)
    with pytest.raises(DataError, match="not valid JSON: nested too deeply"):
        read_span_file(path)


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ("O", "'label' 'O' is a tag, not an entity type"),
        ("B-PER", "'label' 'B-PER' is a tag, not an entity type"),
        (" ", "'label' must be a non-empty string, got ' '"),
        ("PER ", "'label' 'PER ' has leading or trailing spaces"),
    ],
)
def test_when_a_span_label_is_a_tag_or_blank_then_error_names_the_line(
    tmp_path: Path, label, message
) -> None:
    path = tmp_path / "x.jsonl"
    good = '{"text": "Kari", "spans": [{"start": 0, "end": 4, "label": "PER"}]}'
    bad = json.dumps({"text": "Kari", "spans": [{"start": 0, "end": 4, "label": label}]})
    path.write_text(f"{good}\n{bad}\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"x\.jsonl:2: span 0: {message}"):
        read_span_file(path)


def test_when_label_map_names_a_type_that_occurs_nowhere_then_error(tmp_path: Path) -> None:
    from loraner.errors import ConfigError

    (tmp_path / "train.jsonl").write_text(
        '{"text": "Kari", "spans": [{"start": 0, "end": 4, "label": "PER"}]}\n'
    )
    cfg = DataConfig(
        format="jsonl",
        path=str(tmp_path),
        splits={"train": "train.jsonl"},
        label_map={"PERSON": "PER", "PER": "N"},
    )
    with pytest.raises(
        ConfigError, match=r"data\.label_map: 'PERSON' occur in no split; the data's types are PER"
    ):
        load_splits(cfg)
