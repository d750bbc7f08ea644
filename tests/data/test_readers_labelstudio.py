"""``data.format: label-studio``: a Label Studio JSON export read as span examples, one annotation per task,
and everything not taken as it is reported with task ids."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest

from loraner.data import load_splits
from loraner.data.inspect import inspect_path
from loraner.data.labelstudio import (
    holdout_splits,
    is_label_studio_file,
    label_names,
    labelling_config,
    read_label_studio_file,
    utf16_to_chars,
)
from loraner.errors import ConfigError, DataError, DataWarning
from loraner.settings import DataConfig, LabelStudioOptions
from loraner.types import SpanExample


def _read(path: Path, **options: Any) -> tuple[dict[str, list[tuple[str, str]]], dict[str, Any]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        examples, report = read_label_studio_file(path, LabelStudioOptions(**options))
    assert [type(w.message) for w in caught] == [DataWarning]  # one warning per file, never silent
    spans = {ex.id: [(ex.text[s.start : s.end], s.label) for s in ex.spans] for ex in examples}
    return spans, report.to_dict()


def _export(tmp_path: Path, tasks: list[dict[str, Any]], name: str = "export.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(tasks), encoding="utf-8")
    return path


def _task(task_id: int, text: str, *results: dict[str, Any], **annotation: Any) -> dict[str, Any]:
    return {
        "id": task_id,
        "data": {"text": text},
        "annotations": [{"id": task_id, "result": list(results), **annotation}],
    }


def _region(start: int, end: int, text: str, label: str, from_name: str = "label") -> dict[str, Any]:
    return {
        "from_name": from_name,
        "to_name": "text",
        "type": "labels",
        "value": {"start": start, "end": end, "text": text, "labels": [label]},
    }


def test_when_an_export_is_read_then_the_latest_annotation_is_taken_and_every_problem_named(fixtures: Path):
    spans, report = _read(fixtures / "labelstudio" / "export.json", labels=["PER", "LOC", "ORG"])
    assert spans == {
        # annotation 2 (newest not cancelled) wins over 1; the cancelled 3 is not read; predictions never
        "101": [("Kari Nordmann", "PER"), ("Oslo", "LOC"), ("Norwegian", "ORG")],
        "102": [],  # annotated, no regions: a text without entities
        "104": [("Bank of Norway", "ORG"), ("Oslo", "LOC")],  # overlap: the longer kept
        "106": [("Anne", "PER"), ("Tromsø", "LOC")],  # UTF-16 offsets after an emoji converted
        "108": [("Jonas", "PER"), ("Bodø", "LOC")],  # trailing space trimmed
    }
    assert report["skipped"] == {
        "offsets that do not hold value.text": [103],
        "no annotation that was not cancelled": [105],
        "a region with an unknown label (data.label_studio.labels; labels are types, not tags)": [107],
    }
    assert report["where"] == {"103": "region f: [12, 18)", "107": "region n: 'COMPANY'"}
    assert report["repaired"] == {
        "overlapping regions (the longer kept)": [104],
        "offsets in UTF-16 code units converted to characters": [106],
        "whitespace at a region's edges trimmed": [108],
    }


def test_when_an_annotator_is_chosen_then_only_their_annotations_are_read(fixtures: Path):
    spans, report = _read(fixtures / "labelstudio" / "export.json", annotator=1)
    assert spans["101"] == [("Kari", "PER")]  # annotator 1's annotation, though annotator 2's is newer
    assert report["skipped"]["no annotation by annotator 1 that was not cancelled"] == [104, 105, 107]


def test_when_the_annotator_is_an_email_then_completed_by_objects_match(tmp_path: Path):
    task = _task(1, "Kari", _region(0, 4, "Kari", "PER"), completed_by={"id": 5, "email": "a@example.org"})
    other = _task(2, "Ola", _region(0, 3, "Ola", "PER"), completed_by={"id": 6, "email": "b@example.org"})
    spans, report = _read(_export(tmp_path, [task, other]), annotator="a@example.org")
    assert spans == {"1": [("Kari", "PER")]}
    assert report["skipped"] == {"no annotation by annotator a@example.org that was not cancelled": [2]}


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        # two labels on one region: which type is meant cannot be known
        (
            {
                **_region(0, 4, "Kari", "PER"),
                "value": {"start": 0, "end": 4, "text": "Kari", "labels": ["PER", "LOC"]},
            },
            "a region with several labels or none",
        ),
        # offsets past the end of the text
        (_region(0, 40, "Kari", "PER"), "offsets that do not hold value.text"),
        # a tag where a type is expected
        (_region(0, 4, "Kari", "B-PER"), "a region with an unknown label"),
        # offsets as strings
        (
            {**_region(0, 4, "Kari", "PER"), "value": {"start": "0", "end": 4, "labels": ["PER"]}},
            "not an integer",
        ),
    ],
)
def test_when_a_region_is_inconsistent_then_its_task_is_skipped_by_id(
    tmp_path: Path, result: dict[str, Any], reason: str
):
    good = _task(1, "Ola", _region(0, 3, "Ola", "PER"))
    spans, report = _read(_export(tmp_path, [good, _task(2, "Kari i Oslo", result)]))
    assert list(spans) == ["1"]
    assert [(r, ids) for r, ids in report["skipped"].items() if reason in r] == [
        (next(r for r in report["skipped"] if reason in r), [2])
    ]


def test_when_other_controls_and_types_are_present_then_they_are_counted_as_ignored(tmp_path: Path):
    choice = {"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": ["x"]}}
    task = _task(1, "Kari i Oslo", _region(0, 4, "Kari", "PER"), choice)
    with pytest.warns(DataWarning, match="results ignored: 1 'choices'"):
        examples, _ = read_label_studio_file(_export(tmp_path, [task]))
    assert len(examples[0].spans) == 1


def test_when_two_labels_controls_label_regions_then_one_must_be_chosen(tmp_path: Path):
    task = _task(
        1, "Kari i Oslo", _region(0, 4, "Kari", "PER"), _region(7, 11, "Oslo", "LOC", from_name="place")
    )
    path = _export(tmp_path, [task])
    with pytest.raises(ConfigError, match=r"several Labels controls \(label, place\).*from_name"):
        read_label_studio_file(path)
    with pytest.warns(DataWarning, match="results ignored: 1 of control 'label'"):
        examples, _ = read_label_studio_file(path, LabelStudioOptions(from_name="place"))
    assert [(s.start, s.end, s.label) for s in examples[0].spans] == [(7, 11, "LOC")]


def test_when_no_task_can_be_read_then_the_error_says_why(tmp_path: Path):
    path = _export(tmp_path, [_task(1, "Kari", _region(0, 4, "Kari", "PER"), was_cancelled=True)])
    with pytest.raises(DataError, match="no task could be read: no annotation that was not cancelled"):
        read_label_studio_file(path)


def test_when_the_export_is_jsonl_then_each_line_is_a_task(tmp_path: Path):
    tasks = [_task(1, "Kari", _region(0, 4, "Kari", "PER")), _task(2, "Oslo", _region(0, 4, "Oslo", "LOC"))]
    path = tmp_path / "export.jsonl"
    path.write_text("\n".join(json.dumps(t) for t in tasks) + "\n", encoding="utf-8")
    examples, report = read_label_studio_file(path)
    assert [e.id for e in examples] == ["1", "2"] and report.message() is None


def test_utf16_offsets_convert_only_at_character_boundaries():
    text = "a😀b"  # the emoji is two UTF-16 code units
    assert [utf16_to_chars(text, units) for units in range(5)] == [0, 1, None, 2, 3]


def test_when_the_config_names_one_export_then_tasks_are_split_by_the_seeded_holdout(fixtures: Path):
    cfg = DataConfig.model_validate(
        {"format": "label-studio", "path": str(fixtures / "labelstudio" / "export.json"), "seed": 3}
    )
    with pytest.warns(DataWarning):
        splits = load_splits(cfg)
    assert list(splits) == ["train", "validation", "test"]
    ids = [ex.id for examples in splits.values() for ex in examples]
    # each example in exactly one split (without data.label_studio.labels, 107's COMPANY is a label too)
    assert sorted(ids) == ["101", "102", "104", "106", "107", "108"]
    with pytest.warns(DataWarning):
        assert load_splits(cfg) == splits  # seeded


def test_when_holdout_shares_are_invalid_then_the_config_error_names_the_field():
    examples = [SpanExample(str(i), []) for i in range(4)]
    with pytest.raises(ConfigError, match=r"data\.label_studio\.holdout"):
        holdout_splits(examples, {"validation": 0.6, "test": 0.5}, 0)
    with pytest.raises(ConfigError, match="'train' is the rest"):
        holdout_splits(examples, {"train": 0.5}, 0)


def test_when_inspected_then_the_export_is_sniffed_and_its_problems_listed(fixtures: Path):
    path = fixtures / "labelstudio" / "export.json"
    assert is_label_studio_file(path)
    assert not is_label_studio_file(fixtures / "jsonl" / "validation.json")
    summary = inspect_path(path)
    assert summary["splits"]["export"]["examples"] == 6
    (warning,) = summary["warnings"]
    assert warning["label_studio"]["skipped"]["no annotation that was not cancelled"] == [105]
    assert "Kari" not in json.dumps(summary["warnings"])  # ids and offsets, never the text


def test_when_a_labelling_config_is_read_then_its_control_object_field_and_labels_are_found():
    names = label_names(
        '<View><Labels name="ner" toName="doc"><Label value="PER"/><Label value="LOC"/></Labels>'
        '<Text name="doc" value="$note"/></View>'
    )
    assert (names.from_name, names.to_name, names.text_field, names.labels) == (
        "ner",
        "doc",
        "note",
        frozenset({"PER", "LOC"}),
    )
    assert label_names(labelling_config(["PER"])).labels == frozenset({"PER"})
    with pytest.raises(ConfigError, match="no <Labels"):
        label_names('<View><Choices name="c" toName="t"/><Text name="t" value="$text"/></View>')
    with pytest.raises(ConfigError, match="not valid XML"):
        label_names("<View>")


def test_when_an_export_made_by_a_real_label_studio_is_read_then_each_task_gives_its_chosen_annotation(
    fixtures: Path,
):
    """``real-export.json`` was exported by Label Studio 1.23.2 in ``tests/integrations/
    test_label_studio_server.py``: tasks 1-3 imported with loraner's predictions and annotated through
    the API (task 1 revised by a newer annotation without its last region, task 2's newest annotation
    cancelled), tasks 4-5 imported bare and pre-annotated by loraner's ML backend, never annotated."""
    path = fixtures / "labelstudio" / "real-export.json"
    tasks = {task["id"]: task for task in json.loads(path.read_text(encoding="utf-8"))}
    spans, report = _read(path)

    def regions(task_id: int, annotation: int) -> list[tuple[str, str]]:
        result = tasks[task_id]["annotations"][annotation]["result"]
        return [(r["value"]["text"], r["value"]["labels"][0]) for r in result]

    assert list(spans) == ["1", "2", "3"]
    assert spans["1"] == regions(1, 1) == regions(1, 0)[:-1]  # the newer annotation
    assert tasks[2]["annotations"][1]["was_cancelled"] and spans["2"] == regions(
        2, 0
    )  # not the cancelled one
    assert spans["3"] == regions(3, 0)
    assert report["skipped"] == {"no annotation that was not cancelled": [4, 5]}
    # Label Studio exports predictions by id; an annotation made from one carries it whole
    assert all(tasks[i]["predictions"] for i in (4, 5))
    assert tasks[3]["annotations"][0]["prediction"]["model_version"].endswith("@551d9c4f0003")
