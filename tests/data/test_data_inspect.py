from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from loraner.data.inspect import inspect_splits, load_path
from loraner.errors import DataError
from loraner.types import Span, SpanExample, WordExample


def test_when_inspected_then_counts_per_split_and_type() -> None:
    splits = {
        "train": [
            WordExample(tokens=["Ola", "Nordmann", "i", "Oslo"], tags=["B-PER", "I-PER", "O", "B-LOC"])
        ],
        "test": [SpanExample(text="Kari i Bergen", spans=[Span(0, 4, "PER"), Span(7, 13, "LOC")])],
    }
    report = inspect_splits(splits)  # type: ignore[arg-type]
    assert report["splits"]["train"] == {
        "examples": 1,
        "kind": "words",
        "tokens": 4,
        "entities": 2,
        "entity_types": {"LOC": 1, "PER": 1},
    }
    assert report["splits"]["test"]["characters"] == 13
    assert report["entity_types"] == {"LOC": 2, "PER": 2}


@pytest.mark.parametrize(
    ("relative", "split_names", "kind"),
    [
        ("conll/train.txt", ["train"], "words"),  # a column file
        ("conll", ["dev", "test", "train"], "words"),  # a directory of column files
        ("jsonl/train.jsonl", ["train"], "spans"),  # JSONL spans
        ("jsonl/validation.json", ["validation"], "spans"),  # a JSON list of records
        ("nordeid/holdout.json", ["holdout"], "spans"),  # a Nor-DeID file
        ("nordeid", ["holdout", "training", "validation"], "spans"),
        ("fewnerd", ["dev", "test", "train"], "words"),  # Few-NERD txt is a column file in IO
    ],
)
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_when_path_sniffed_then_right_reader_used(
    fixtures: Path, relative: str, split_names: list[str], kind: str
) -> None:
    splits = load_path(fixtures / relative)
    assert sorted(splits) == split_names
    report = inspect_splits(splits)
    assert {s["kind"] for s in report["splits"].values()} == {kind}


def test_when_nor_deid_sniffed_then_tags_parsed_not_read_as_spans(fixtures: Path) -> None:
    [example] = load_path(fixtures / "nordeid" / "holdout.json")["holdout"]
    assert isinstance(example, SpanExample)
    assert "<" not in example.text


@pytest.mark.parametrize(
    ("name", "fragment"), [("notes.md", "cannot tell the format"), ("nowhere", "no such file")]
)
def test_when_path_unreadable_then_error_names_it(tmp_path: Path, name: str, fragment: str) -> None:
    if name.endswith(".md"):
        (tmp_path / name).write_text("# hi\n", encoding="utf-8")
    with pytest.raises(DataError, match=fragment) as info:
        load_path(tmp_path / name)
    assert str(tmp_path / name) in str(info.value)


def test_when_directory_has_no_data_then_error_lists_supported(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="supported: Nor-DeID"):
        load_path(tmp_path)


@pytest.mark.shared
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_when_real_nor_deid_dir_inspected_then_all_labels_counted(shared_data: Callable[..., Path]) -> None:
    report = inspect_splits(load_path(shared_data("nor-deid-synth")))
    assert set(report["entity_types"]) == {"AGE", "DATE", "ID", "LOC", "PATIENT", "PHONE"}
    assert report["splits"]["training"]["examples"] == 1000
