"""``loraner predict --output-format label-studio``: Label Studio tasks with the model's prediction, and the
round trip predict → annotate (the predictions accepted as they are) → export → ``data.format:
label-studio`` losing no span."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loraner.cli import app
from loraner.data.labelstudio import label_names, read_label_studio_file
from loraner.inference import NERPredictor

RECORDS = [
    {"id": "a", "text": "Kari Nordmann bor i Tromsø og jobber i Oslo.", "source": "notes"},
    {"id": "b", "text": "José Müller 😀 flew to Bergen."},
    {"id": "c", "text": ""},
]


def _predict(model: Path, tmp_path: Path, lines: list[str], *extra: str) -> tuple[int, str, list[dict]]:
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    target = tmp_path / "tasks.jsonl"
    args = [
        "predict",
        "-m",
        str(model),
        "-i",
        str(source),
        "-o",
        str(target),
        "--output-format",
        "label-studio",
    ]
    result = CliRunner().invoke(app, [*args, *extra])
    written = target.read_text(encoding="utf-8").splitlines() if target.exists() else []
    tasks = [json.loads(line) for line in written]
    return result.exit_code, result.output, tasks


def test_when_predicted_as_label_studio_then_each_row_is_a_task_with_a_versioned_scored_prediction(
    tiny_roberta_dir, tmp_path
):
    code, output, tasks = _predict(tiny_roberta_dir, tmp_path, [json.dumps(r) for r in RECORDS])
    assert code == 0, output
    predictor = NERPredictor.from_pretrained(tiny_roberta_dir)
    expected = predictor.predict_batch([r["text"] for r in RECORDS])
    assert [t["data"] for t in tasks] == RECORDS  # the record's fields are the task's data
    for task, entities in zip(tasks, expected, strict=True):
        (prediction,) = task["predictions"]
        assert prediction["model_version"] == predictor.version
        assert 0.0 <= prediction["score"] <= 1.0
        assert [
            (r["value"]["start"], r["value"]["end"], r["value"]["labels"][0], r["score"])
            for r in prediction["result"]
        ] == [(e.start, e.end, e.type, round(e.score, 4)) for e in entities]
    assert any(t["predictions"][0]["result"] for t in tasks), "the tiny model finds some entities"


def test_round_trip_predict_annotate_export_read_loses_no_span(tiny_roberta_dir, tmp_path):
    _, _, tasks = _predict(tiny_roberta_dir, tmp_path, [json.dumps(r) for r in RECORDS])
    # What Label Studio exports once an annotator accepts each prediction as it is.
    exported = [
        {
            "id": number,
            "data": task["data"],
            "annotations": [
                {"id": number, "was_cancelled": False, "result": task["predictions"][0]["result"]}
            ],
            "predictions": task["predictions"],
        }
        for number, task in enumerate(tasks, start=1)
    ]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(exported, ensure_ascii=False), encoding="utf-8")
    examples, report = read_label_studio_file(path)
    assert report.message() is None  # nothing skipped, repaired or ignored
    for example, task in zip(examples, tasks, strict=True):
        assert [(s.start, s.end, s.label) for s in example.spans] == [
            (r["value"]["start"], r["value"]["end"], r["value"]["labels"][0])
            for r in task["predictions"][0]["result"]
        ]


def test_when_the_label_config_names_the_project_then_tasks_and_regions_follow_it(tiny_roberta_dir, tmp_path):
    config = tmp_path / "config.xml"
    config.write_text(
        '<View><Labels name="ner" toName="doc"><Label value="PER"/></Labels>'
        '<Text name="doc" value="$note"/></View>'
    )
    code, output, tasks = _predict(
        tiny_roberta_dir, tmp_path, [json.dumps(r) for r in RECORDS], "--label-config", str(config)
    )
    assert code == 0, output
    assert [t["data"]["note"] for t in tasks] == [r["text"] for r in RECORDS] and "text" not in tasks[0][
        "data"
    ]
    for task in tasks:
        for region in task["predictions"][0]["result"]:
            assert (region["from_name"], region["to_name"], region["value"]["labels"]) == (
                "ner",
                "doc",
                ["PER"],
            )


def test_when_a_row_is_bad_then_it_gets_no_task_and_the_command_says_so(tiny_roberta_dir, tmp_path):
    code, output, tasks = _predict(tiny_roberta_dir, tmp_path, [json.dumps(RECORDS[0]), '{"txt": "typo"}'])
    assert code == 1
    assert "1 of 2 texts failed (they have no task in the output)" in output and "in.jsonl:2" in output
    assert len(tasks) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [("<View>", "not valid XML"), ('<View><Text name="t" value="$text"/></View>', "no <Labels")],
)
def test_when_the_label_config_is_bad_then_the_error_names_the_file(
    tiny_roberta_dir, tmp_path, content, message
):
    config = tmp_path / "config.xml"
    config.write_text(content)
    code, output, _ = _predict(
        tiny_roberta_dir, tmp_path, [json.dumps(RECORDS[0])], "--label-config", str(config)
    )
    assert code == 1 and f"--label-config {config}" in output and message in output
    assert not (tmp_path / "tasks.jsonl").exists()  # checked before the model loads or anything is written


def test_when_a_project_config_is_asked_for_a_model_then_its_labels_are_the_model_types(tiny_roberta_dir):
    result = CliRunner().invoke(app, ["label-studio", "config", "-m", str(tiny_roberta_dir)])
    assert result.exit_code == 0, result.output
    names = label_names(result.stdout)
    assert (names.from_name, names.to_name, names.text_field, names.labels) == (
        "label",
        "text",
        "text",
        frozenset({"PER", "LOC"}),
    )
