"""OpenVINO export: fp32 parity with PyTorch, NNCF static int8 with the ONNX export's checks, the IR in
the model directory, and failures that raise and write nothing."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

import loraner.export.parity as parity
from loraner.cli import app
from loraner.errors import ConfigError, ModelError
from loraner.export.openvino import export_openvino
from loraner.inference import NERPredictor
from loraner.modeldir import ModelDir

pytest.importorskip("openvino")
pytest.importorskip("nncf")

CALIBRATION = [
    "José Müller flew from Oslo to São Paulo on Monday to meet Angela Merkel.",
    "Pasienten Kari Nordmann ble innlagt ved Haukeland universitetssjukehus i Bergen.",
    "Lars Østergaard bor i Tromsø og jobber på UNN.",
    "Microsoft and the University of Cambridge announced a partnership in London yesterday.",
] * 3


@pytest.fixture(scope="module")
def tiny_openvino_int8(tmp_path_factory, tiny_roberta_dir):
    out = tmp_path_factory.mktemp("ov") / "int8"
    report = export_openvino(
        tiny_roberta_dir, out, quantize="int8", calibration_texts=CALIBRATION, int8_floor=0.0
    )
    return out, report


def test_int8_export_is_self_contained_and_checked_like_onnx(tiny_openvino_int8):
    out, report = tiny_openvino_int8
    assert report.fp32_max_abs_diff <= report.atol == 1e-3 and report.fp32_token_agreement == 1.0
    int8 = report.int8
    assert 0.0 <= int8["entity_agreement"] <= 1.0 and 0.0 <= int8["token_agreement"] <= 1.0
    assert int8["calibration_windows"] == report.windows >= len(CALIBRATION)
    assert "f1_drop_points" not in int8, "texts without gold: no F1 to compare"
    saved = json.loads((out / "openvino" / "export_report.json").read_text())
    assert saved["int8"] == int8 and saved["calibration"] == "texts given"
    for name in ("openvino/model.xml", "openvino/model.bin", "tokenizer.json", "config.json", "loraner.json"):
        assert (out / name).exists(), name
    assert not list(out.glob("*.bin")) and not list(out.glob("*.safetensors"))
    meta = ModelDir.open(out)
    assert meta.kind == "openvino" and meta.openvino_quantization == "int8"
    assert not meta.has_torch_weights, "openvino/model.bin is not taken for PyTorch weights"


def test_the_int8_ir_predicts_with_offsets_through_the_engine(tiny_openvino_int8, tiny_roberta_dir):
    out, _ = tiny_openvino_int8
    predictor = NERPredictor.from_pretrained(out)  # auto: the IR is all the directory has
    assert predictor.info.backend == "openvino"
    predictor.check()
    text = "José Müller bor i Tromsø."
    entities = predictor.predict(text)
    assert entities, "no entities: the offset check below would hold for nothing"
    assert all(e.text == text[e.start : e.end] for e in entities)


def test_fp32_export_into_the_model_directory_gives_the_torch_entities(tmp_path, tiny_roberta_dir):
    model = shutil.copytree(tiny_roberta_dir, tmp_path / "model")
    report = export_openvino(model)
    assert report.quantization is None and report.calibration == "the default sample"
    assert (model / "openvino" / "model.xml").exists()
    assert json.loads((model / "loraner.json").read_text())["openvino"]["quantization"] == "none"
    torch = NERPredictor.from_pretrained(model, backend="torch", dtype="fp32")
    ov = NERPredictor.from_pretrained(model, backend="openvino", dtype="fp32")
    texts = [*CALIBRATION[:4], "Kontakt Ingrid Solberg i Storgata 1, 0155 Oslo.\nDr. Ola Hansen"]
    expected, found = torch.predict_batch(texts), ov.predict_batch(texts)
    assert any(expected), "no entities: the comparison below would hold for nothing"
    assert [[(e.type, e.start, e.end) for e in doc] for doc in found] == [
        [(e.type, e.start, e.end) for e in doc] for doc in expected
    ]
    assert [e.score for doc in found for e in doc] == pytest.approx(
        [e.score for doc in expected for e in doc]
    )
    assert NERPredictor.from_pretrained(model).info.backend == "torch", "fp32 IR: auto keeps torch"


def test_when_int8_is_below_the_floor_then_raise_and_write_no_ir(tmp_path, tiny_roberta_dir, monkeypatch):
    monkeypatch.setattr(parity, "entity_f1", lambda ref, cand: 0.5)
    out = tmp_path / "int8"
    with pytest.raises(ModelError, match=r"0\.500 is below the floor 0\.9"):
        export_openvino(tiny_roberta_dir, out, quantize="int8", calibration_texts=CALIBRATION)
    assert not (out / "openvino" / "model.xml").exists(), "no silent fall back to fp32"
    report = json.loads((out / "openvino" / "export_report.json").read_text())
    assert report["int8"]["entity_agreement"] == 0.5


def test_int8_calibrates_on_the_validation_split_and_refuses_an_f1_drop(
    tmp_path, tiny_adapter_runs, monkeypatch
):
    merged = tiny_adapter_runs["general"] / "merged"
    real_f1 = parity.entity_f1
    # Gold F1 (reference: the gold spans) is 1.0 for fp32 and 0.9 for int8: a 10-point drop.
    calls = iter([1.0, 1.0, 0.9])
    monkeypatch.setattr(parity, "entity_f1", lambda ref, cand: next(calls, None) or real_f1(ref, cand))
    out = tmp_path / "int8"
    with pytest.raises(ModelError, match=r"loses 10\.00 F1 points .* \(limit 0\.5\)"):
        export_openvino(merged, out, quantize="int8", int8_floor=0.0)
    report = json.loads((out / "openvino" / "export_report.json").read_text())
    assert report["calibration"] == "validation split"
    assert report["int8"]["f1_drop_points"] == 10.0
    assert report["sample_texts"] > 0
    assert not (out / "openvino" / "model.xml").exists()


def test_int8_without_calibration_texts_or_a_validation_split_is_refused(tmp_path, tiny_roberta_dir):
    with pytest.raises(ConfigError, match="static int8 needs calibration texts: give --calibration FILE"):
        export_openvino(tiny_roberta_dir, tmp_path / "out", quantize="int8")


def test_cli_exports_int8_with_a_calibration_file(tmp_path, tiny_roberta_dir):
    calibration = tmp_path / "calibration.jsonl"
    calibration.write_text("".join(json.dumps({"text": t}) + "\n" for t in CALIBRATION), encoding="utf-8")
    out = tmp_path / "cli"
    args = ["export", "openvino", "--model", str(tiny_roberta_dir), "-o", str(out), "--quantize", "int8"]
    result = CliRunner().invoke(app, [*args, "--calibration", str(calibration), "--int8-floor", "0"])
    assert result.exit_code == 0, result.output
    assert "fp32 parity" in result.output and "int8: entity agreement" in result.output
    assert json.loads((out / "loraner.json").read_text())["openvino"]["calibration"] == str(calibration)


def test_predict_runs_the_ir_from_the_command_line(tiny_openvino_int8):
    out, _ = tiny_openvino_int8
    text = "José Müller bor i Tromsø."
    result = CliRunner().invoke(app, ["predict", "--model", str(out), "--backend", "openvino", text])
    assert result.exit_code == 0, result.output
    library = NERPredictor.from_pretrained(out, backend="openvino").predict(text)
    assert [(e["start"], e["end"], e["type"]) for e in json.loads(result.output)["entities"]] == [
        (e.start, e.end, e.type) for e in library
    ]
