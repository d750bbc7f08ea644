"""``loraner predict``: one text, JSONL in and out, and errors that name the line."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from loraner.cli import app


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    return CliRunner()


def test_when_text_then_json_entities_that_slice_it(runner, tiny_onnx_dir):
    text = "José Müller 😀 bor i Tromsø."
    result = runner.invoke(app, ["predict", "--model", str(tiny_onnx_dir), text])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["text"] == text
    for e in data["entities"]:
        assert e["text"] == text[e["start"] : e["end"]]
        assert set(e) == {"type", "text", "start", "end", "score"}


def test_when_jsonl_then_each_line_gains_entities_in_order(runner, tiny_onnx_dir, tmp_path):
    source = tmp_path / "in.jsonl"
    lines = [{"id": "a", "text": "José Müller"}, {"text": "Oslo er fin"}, {"id": 3, "text": ""}]
    source.write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in lines[:2]) + "\n\n" + json.dumps(lines[2])
    )
    target = tmp_path / "out" / "pred.jsonl"
    args = [
        "predict",
        "-m",
        str(tiny_onnx_dir),
        "--input",
        str(source),
        "--output",
        str(target),
        "--batch-size",
        "2",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert [{k: v for k, v in r.items() if k != "entities"} for r in out] == lines
    assert all(isinstance(r["entities"], list) for r in out)
    assert out[2]["entities"] == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"text": "ok"}\n{"txt": "typo"}\n', "in.jsonl:2: expected an object"),  # missing field
        ('{"text": "ok"}\nnot json\n', "in.jsonl:2: not valid JSON"),  # broken line
        ('["text"]\n', "in.jsonl:1: expected an object"),  # not an object
        ('{"text": 5}\n', "in.jsonl:1: expected an object"),  # wrong type
    ],
)
def test_when_jsonl_line_is_bad_then_error_names_it(runner, tiny_onnx_dir, tmp_path, content, message):
    source = tmp_path / "in.jsonl"
    source.write_text(content)
    result = runner.invoke(app, ["predict", "-m", str(tiny_onnx_dir), "-i", str(source)])
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give either TEXT or --input"),
        (["some text", "--input", "x.jsonl"], "give either TEXT or --input"),
        (["--input", "same.jsonl", "--output", "same.jsonl"], "--output must differ"),
    ],
)
def test_when_arguments_conflict_then_readable_error(runner, tiny_onnx_dir, args, message):
    result = runner.invoke(app, ["predict", "-m", str(tiny_onnx_dir), *args])
    assert result.exit_code == 1
    assert message in result.output


@pytest.mark.parametrize(
    ("option", "value", "choices"),
    [
        ("--aggregation", "median", "'first', 'average', 'max'"),
        ("--backend", "tensorflow", "'auto', 'torch', 'onnx'"),
        ("--word-split", "spaces", "'conll', 'tokenizer'"),
    ],
)
def test_when_a_choice_is_unknown_then_usage_error_lists_the_choices(
    runner, tiny_onnx_dir, option, value, choices
):
    result = runner.invoke(app, ["predict", "-m", str(tiny_onnx_dir), option, value, "text"])
    squashed = " ".join(result.output.replace("│", " ").split())  # rich wraps the error box
    assert result.exit_code == 2 and f"'{value}' is not one of {choices}" in squashed


def test_when_model_missing_then_error_not_traceback(runner, tmp_path):
    result = runner.invoke(app, ["predict", "-m", str(tmp_path / "nope"), "text"])
    assert result.exit_code == 1
    assert "model directory not found" in result.output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b'{"text": "ok"}\n{"text": "Kari \\ud800 Nordmann"}\n',
            'in.jsonl:2: "text" contains a lone surrogate',
        ),
        ('{"text": "ok"}\n{"text": "Tromsø"}\n'.encode("latin-1"), "in.jsonl:2: not UTF-8 text"),
        (b'{"text": "ok"}\n' + b"[" * 100_000 + b"\n", "in.jsonl:2: not valid JSON (nested too deeply)"),
    ],
)
def test_when_input_line_is_hostile_then_one_line_error_naming_it(
    runner, tiny_onnx_dir, tmp_path, content, message
):
    source = tmp_path / "in.jsonl"
    source.write_bytes(content)
    result = runner.invoke(app, ["predict", "-m", str(tiny_onnx_dir), "--input", str(source)])
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output


def test_when_input_text_has_u2028_then_it_is_one_record(runner, tiny_onnx_dir, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"text": "Oslo\u2028Bergen\u0085x"}, ensure_ascii=False) + "\n", "utf-8")
    result = runner.invoke(app, ["predict", "-m", str(tiny_onnx_dir), "--input", str(source)])
    assert result.exit_code == 0, result.output
    line = result.stdout.strip("\n").split("\n")[-1]
    assert json.loads(line)["text"] == "Oslo\u2028Bergen\u0085x"


def test_predictor_refuses_a_lone_surrogate_with_a_data_error(tiny_onnx_dir):
    from loraner.errors import DataError
    from loraner.inference import NERPredictor

    predictor = NERPredictor.from_pretrained(tiny_onnx_dir)
    with pytest.raises(DataError, match=r"texts\[1\] contains a lone surrogate"):
        predictor.predict_batch(["ok", "a\udc80b"])


def test_when_a_torch_checkpoint_holds_pickled_objects_then_one_line_refusal(
    runner, tmp_path, tiny_roberta_dir
):
    import argparse
    import shutil

    import torch
    from safetensors.torch import load_file

    model = tmp_path / "pickled"
    shutil.copytree(tiny_roberta_dir, model)
    weights = load_file(model / "model.safetensors")
    (model / "model.safetensors").unlink()
    weights["extra"] = argparse.Namespace(a=1)  # an arbitrary object: torch.load(weights_only) refuses it
    torch.save(weights, model / "pytorch_model.bin")
    result = runner.invoke(app, ["predict", "-m", str(model), "--backend", "torch", "Kari"])
    assert result.exit_code == 1, result.output
    assert "holds objects other than tensors" in result.output and "Traceback" not in result.output


def test_when_log_level_is_unknown_then_serve_says_so_in_one_line(runner, tiny_onnx_dir, monkeypatch):
    monkeypatch.setenv("LORANER_LOG_LEVEL", "verbose")
    result = runner.invoke(app, ["serve", "--model", str(tiny_onnx_dir)])
    assert result.exit_code == 1
    assert "LORANER_LOG_LEVEL (--log-level): Input should be" in result.output
