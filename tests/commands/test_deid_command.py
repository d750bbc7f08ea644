"""``loraner deid``: one text, JSONL and .txt files, config and overrides, and one-line errors.

Most cases patch in a gazetteer predictor (a random model finds nothing to check); one runs the tiny
random model end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loraner.cli import app

ROOT = Path(__file__).resolve().parents[2]
NOTE = "Kari Nordmann (45 år) bor i Bergen, tlf. 912 34 567."


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    return CliRunner()


def run(runner: CliRunner, *args: str):
    return runner.invoke(app, ["deid", "--model", "some/model", *args])


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_when_text_then_deidentified_json_without_the_original(runner, fake_model):
    result = run(runner, NOTE)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["text"] == "[PATIENT] ([AGE]) bor i [LOC], tlf. 912 34 567."
    assert [(i["type"], i["operator"]) for i in data["items"]] == [
        ("PATIENT", "replace"),
        ("AGE", "replace"),
        ("LOC", "replace"),
    ]
    assert set(data) == {"text", "items"} and "Kari" not in result.stdout
    assert fake_model[0].o_thresholds == [None]  # built-in defaults: the predictor's own (argmax)


def test_when_jsonl_then_one_record_per_line_with_ids_and_no_phi(runner, fake_model, tmp_path):
    source = write_jsonl(
        tmp_path / "notes.jsonl",
        [
            {"id": "n1", "text": NOTE, "mrn": "secret-123"},
            {"text": "Ola Hansen kom i dag.", "document_key": "patient-7"},
        ],
    )
    target = tmp_path / "out" / "deid.jsonl"
    result = run(runner, "--input", str(source), "--output", str(target))
    assert result.exit_code == 0, result.output
    out = read_jsonl(target)
    assert [r["id"] for r in out] == ["n1", 2]  # no id: the line number
    assert [set(r) for r in out] == [{"id", "text", "items"}] * 2
    assert out[1]["text"] == "[PATIENT] kom i dag."
    written = target.read_text(encoding="utf-8")
    for phi in ("Kari", "Bergen", "Ola Hansen", "secret-123"):  # other fields are not copied either
        assert phi not in written
    assert "wrote 2 documents" in result.stderr
    assert fake_model[0].batches == [[NOTE, "Ola Hansen kom i dag."]]


def test_when_include_original_then_the_original_text_is_written(runner, fake_model, tmp_path):
    source = write_jsonl(tmp_path / "notes.jsonl", [{"id": 1, "text": NOTE}])
    target = tmp_path / "deid.jsonl"
    result = run(runner, "-i", str(source), "-o", str(target), "--include-original")
    assert result.exit_code == 0, result.output
    assert read_jsonl(target)[0]["original"] == NOTE


def test_when_txt_file_then_it_is_one_document_named_by_its_stem(runner, fake_model, tmp_path):
    source = tmp_path / "epikrise.txt"
    source.write_text(NOTE + "\nOla Hansen er fastlege.\n", encoding="utf-8")
    result = run(runner, "--input", str(source))  # no --output: stdout
    assert result.exit_code == 0, result.output
    [record] = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["id"] == "epikrise" and record["text"].endswith("[PATIENT] er fastlege.\n")


def test_when_repo_config_then_its_operators_and_recognizers_apply(runner, fake_model):
    result = run(runner, "--config", str(ROOT / "configs" / "deid.yaml"), NOTE)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {i["type"]: i["operator"] for i in data["items"]} == {
        "PATIENT": "pseudonymize",
        "AGE": "pseudonymize",
        "LOC": "pseudonymize",
        "PHONE": "pseudonymize",  # found by the phone recogniser, not the model
    }
    assert "Kari Nordmann" not in data["text"] and "912 34 567" not in data["text"]


@pytest.mark.parametrize(
    ("flags", "phone_replaced"),
    [
        ([], False),  # built-in defaults: recognisers off
        (["--recognizers"], True),  # switched on from the command line
    ],
)
def test_when_recognizers_flag_is_given_then_it_overrides_the_config(
    runner, fake_model, flags, phone_replaced
):
    result = run(runner, *flags, NOTE)
    assert result.exit_code == 0, result.output
    assert ("912 34 567" not in json.loads(result.stdout)["text"]) is phone_replaced


def test_when_o_threshold_is_given_then_the_predictor_gets_it(runner, fake_model):
    result = run(runner, "--o-threshold", "0.7", "--backend", "onnx", NOTE)
    assert result.exit_code == 0, result.output
    assert fake_model[0].o_thresholds == [0.7]
    assert fake_model[0].loaded_with["backend"] == "onnx"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give either TEXT or --input"),  # nothing to de-identify
        (["--input", "x.jsonl", "text"], "give either TEXT or --input"),  # both
        (["--o-threshold", "1.5", "t"], "o_threshold: Input should be less than or equal to 1"),  # range
        (["--config", "/nonexistent/deid.yaml", "t"], "deid config file not found"),
        (["--input", "/nonexistent/notes.jsonl"], "cannot read"),
    ],
)
def test_when_arguments_are_wrong_then_one_line_error_and_exit_1(runner, fake_model, args, message):
    result = run(runner, *args)
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert fake_model == []  # failed before loading the model


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"text": "ok"}\n{"txt": "typo"}\n', ':2: expected an object with a "text" string'),
        ('{"text": "ok"}\nnot json\n', ":2: not valid JSON"),
        ('{"text": "ok", "document_key": 5}\n', ':1: "document_key" must be a string'),
    ],
)
def test_when_strict_and_a_jsonl_line_is_bad_then_the_error_names_it_before_the_model_loads(
    runner, fake_model, tmp_path, content, message
):
    source = tmp_path / "bad.jsonl"
    source.write_text(content, encoding="utf-8")
    target = tmp_path / "out.jsonl"
    result = run(runner, "--input", str(source), "--output", str(target), "--strict")
    assert result.exit_code == 1 and message in result.output
    assert fake_model == [] and not target.exists()


def test_when_lines_are_bad_then_they_get_an_error_the_rest_go_on_and_exit_1(runner, fake_model, tmp_path):
    lines = [
        json.dumps({"id": "n1", "text": NOTE}),
        json.dumps({"id": "n2", "txt": "Kari Nordmann"}),  # no "text": the typo'd field is not copied
        "not json",
        json.dumps({"text": "Ola Hansen kom i dag.", "document_key": 5}),
        json.dumps({"text": "Ola Hansen kom i dag."}),
    ]
    source = tmp_path / "notes.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    target = tmp_path / "deid.jsonl"
    result = run(runner, "--input", str(source), "--output", str(target))
    assert result.exit_code == 1
    out = read_jsonl(target)
    assert [r["id"] for r in out] == ["n1", "n2", 3, 4, 5]  # every row, in order
    assert [r.get("error") for r in out] == [
        None,
        f'{source}:2: expected an object with a "text" string',
        f"{source}:3: not valid JSON (Expecting value)",
        f'{source}:4: "document_key" must be a string',
        None,
    ]
    assert out[1] == {"id": "n2", "text": None, "items": None, "error": out[1]["error"]}
    assert out[4]["text"] == "[PATIENT] kom i dag." and "Kari" not in target.read_text(encoding="utf-8")
    assert "wrote 5 documents" in result.stderr
    assert f'3 of 5 documents failed (their rows have "error"); the first: {source}:2:' in result.stderr
    assert fake_model[0].batches == [[NOTE, "Ola Hansen kom i dag."]]  # the good rows, in one chunk


def test_when_output_is_the_input_then_error(runner, fake_model, tmp_path):
    source = write_jsonl(tmp_path / "notes.jsonl", [{"text": NOTE}])
    result = run(runner, "--input", str(source), "--output", str(source))
    assert result.exit_code == 1 and "--output must differ from --input" in result.output
    assert read_jsonl(source) == [{"text": NOTE}]


def test_when_hash_secret_is_missing_then_error_before_the_model_loads(
    runner, fake_model, tmp_path, monkeypatch
):
    monkeypatch.delenv("LORANER_DEID_SECRET", raising=False)
    config = tmp_path / "deid.yaml"
    config.write_text("default: hash\n", encoding="utf-8")
    result = run(runner, "--config", str(config), NOTE)
    assert result.exit_code == 1 and "LORANER_DEID_SECRET" in result.output
    assert fake_model == []


def test_when_the_tiny_model_runs_then_offsets_are_consistent(runner, nordeid_model, tmp_path):
    source = write_jsonl(
        tmp_path / "notes.jsonl", [{"id": "a", "text": NOTE}, {"id": "b", "text": "Ingen PHI."}]
    )
    target = tmp_path / "deid.jsonl"
    args = ["deid", "-m", str(nordeid_model), "--backend", "torch", "-i", str(source), "-o", str(target)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    for record, original in zip(read_jsonl(target), (NOTE, "Ingen PHI."), strict=True):
        cursor, new_cursor = 0, 0
        for item in record["items"]:  # the text between replacements is copied unchanged
            assert original[cursor : item["start"]] == record["text"][new_cursor : item["new_start"]]
            assert record["text"][item["new_start"] : item["new_end"]] == item["replacement"]
            cursor, new_cursor = item["end"], item["new_end"]
        assert original[cursor:] == record["text"][new_cursor:]
