"""ONNX export: fp32 logits parity, int8 agreement with a floor, companions, and failures that raise."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import loraner.export.onnx as onnx_export
import loraner.export.parity as parity
from loraner.cli import app
from loraner.errors import ConfigError, ModelError
from loraner.export.onnx import export_onnx
from loraner.inference import NERPredictor
from loraner.scores import entity_f1
from loraner.types import Entity


def test_fp32_export_matches_torch_logits_and_is_self_contained(tiny_onnx_dir):
    report = json.loads((tiny_onnx_dir / "export_report.json").read_text())
    assert report["fp32_max_abs_diff"] <= report["atol"] == 1e-3
    assert report["fp32_token_agreement"] == 1.0
    assert report["windows"] >= report["sample_texts"] > 0
    for name in ("model.onnx", "tokenizer.json", "tokenizer_config.json", "config.json", "loraner.json"):
        assert (tiny_onnx_dir / name).exists(), name
    meta = json.loads((tiny_onnx_dir / "loraner.json").read_text())
    assert meta["labels"] == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    assert meta["onnx"]["quantization"] == "none" and meta["onnx"]["opset"] == 17
    assert not any(tiny_onnx_dir.glob("*.safetensors")), "no PyTorch weights needed to serve it"
    modes = [p.stat().st_mode for p in tiny_onnx_dir.rglob("*") if p.is_file()]
    assert modes and all(mode & 0o044 == 0o044 for mode in modes), "readable by the serving image's user"


def test_on_a_cpu_with_native_bf16_the_export_still_checks_against_fp32(
    tmp_path, tiny_roberta_dir, monkeypatch
):
    """The default torch dtype is bf16 there; the fp32 graph must be compared with fp32 weights."""
    from loraner.inference import backends

    monkeypatch.setattr(backends, "native_bf16", lambda: True)
    report = export_onnx(tiny_roberta_dir, tmp_path / "fp32")
    assert report.fp32_max_abs_diff <= 1e-3


def test_int8_export_reports_agreement_and_loads(tmp_path, tiny_roberta_dir):
    out = tmp_path / "int8"
    report = export_onnx(tiny_roberta_dir, out, quantize="int8", int8_floor=0.0)
    int8 = report.int8
    assert 0.0 <= int8["entity_agreement"] <= 1.0
    assert 0.0 <= int8["token_agreement"] <= 1.0
    assert int8["size_mb_int8"] < int8["size_mb_fp32"]
    assert json.loads((out / "export_report.json").read_text())["int8"] == int8
    assert int8["reduce_range"] is True
    assert int8["fp32_matmuls"] == ["/model/roberta/encoder/layer.1/output/dense/MatMul"]
    low, high = int8_weight_range(out / "model.onnx")
    assert low >= -64 and high <= 64, "7-bit weights (full 8-bit ones saturate VPMADDUBSW on AVX2)"
    predictor = NERPredictor.from_pretrained(out)
    assert predictor.info.backend == "onnx"
    text = "José Müller bor i Tromsø."
    entities = predictor.predict(text)
    assert entities, "no entities: the offset check below would hold for nothing"
    assert all(e.text == text[e.start : e.end] for e in entities)


def int8_weight_range(path):
    """The smallest and largest value of the graph's int8 weight initializers."""
    import onnx
    from onnx import numpy_helper

    weights = [
        numpy_helper.to_array(init)
        for init in onnx.load(str(path)).graph.initializer
        if init.data_type == onnx.TensorProto.INT8
    ]
    assert weights, "no int8 weights: the graph was not quantized"
    return int(min(np.min(w) for w in weights)), int(max(np.max(w) for w in weights))


def test_the_upper_half_feed_forward_output_projections_stay_fp32(tmp_path):
    """Found by shape in any graph: products back to the most common width from a wider input."""
    import onnx
    from onnx import helper, numpy_helper

    from loraner.export.onnx import precision_sensitive_matmuls

    hidden, wide, labels = 8, 32, 3
    shapes = {}
    for layer in range(4):
        shapes |= {
            f"q{layer}": (hidden, hidden),
            f"up{layer}": (hidden, wide),
            f"down{layer}": (wide, hidden),
        }
    shapes["classifier"] = (hidden, labels)
    weights = [numpy_helper.from_array(np.zeros(shape, np.float32), f"w_{n}") for n, shape in shapes.items()]
    nodes, current = [], "x"
    for name in shapes:
        nodes.append(helper.make_node("MatMul", [current, f"w_{name}"], [name], name=name))
        current = name
    inputs = [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, hidden])]
    outputs = [helper.make_tensor_value_info(current, onnx.TensorProto.FLOAT, [1, labels])]
    graph = helper.make_model(helper.make_graph(nodes, "encoder", inputs, outputs, weights))
    assert precision_sensitive_matmuls(graph) == ["down2", "down3"]


def test_when_int8_below_floor_then_raise_and_ship_nothing(tmp_path, tiny_roberta_dir, monkeypatch):
    monkeypatch.setattr(parity, "entity_f1", lambda ref, cand: 0.5)
    out = tmp_path / "int8"
    with pytest.raises(ModelError, match=r"0\.500 is below the floor 0\.9"):
        export_onnx(tiny_roberta_dir, out, quantize="int8", int8_floor=0.9)
    assert not (out / "model.onnx").exists(), "no silent fall back to fp32"
    assert json.loads((out / "export_report.json").read_text())["int8"]["entity_agreement"] == 0.5


def test_when_quantization_fails_then_raise(tmp_path, tiny_roberta_dir, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("unsupported op")

    monkeypatch.setattr(onnx_export, "quantize_dynamic", broken)
    with pytest.raises(ModelError, match="int8 quantization failed: unsupported op"):
        export_onnx(tiny_roberta_dir, tmp_path / "int8", quantize="int8", preprocess=False)
    assert not (tmp_path / "int8" / "model.onnx").exists()


def test_when_fp32_logits_diverge_then_raise_with_report(tmp_path, tiny_roberta_dir, monkeypatch):
    monkeypatch.setattr(parity, "logits_parity", lambda *args: (0.5, 0.7))
    with pytest.raises(ModelError, match=r"differ from PyTorch by 5\.00e-01"):
        export_onnx(tiny_roberta_dir, tmp_path / "bad")
    assert json.loads((tmp_path / "bad" / "export_report.json").read_text())["fp32_max_abs_diff"] == 0.5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"quantize": "int4"}, "not supported"), ({"opset": 13}, "opset"), ({"sample_texts": [" "]}, "sample")],
)
def test_when_options_invalid_then_config_error(tmp_path, tiny_roberta_dir, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        export_onnx(tiny_roberta_dir, tmp_path / "x", **kwargs)


@pytest.mark.parametrize(
    ("reference", "candidate", "expected"),
    [
        ([[]], [[]], 1.0),  # nothing to disagree about
        ([[Entity("PER", "A", 0, 1)]], [[Entity("PER", "A", 0, 1, 0.5)]], 1.0),  # scores do not matter
        ([[Entity("PER", "A", 0, 1)]], [[Entity("LOC", "A", 0, 1)]], 0.0),  # type must match
        ([[Entity("PER", "AB", 0, 2)], []], [[Entity("PER", "AB", 0, 2)], [Entity("PER", "C", 0, 1)]], 2 / 3),
    ],
)
def test_entity_agreement_is_f1_against_reference(reference, candidate, expected):
    assert entity_f1(reference, candidate) == pytest.approx(expected)


def test_cli_export_onnx_with_sample_and_int8(tmp_path, tiny_roberta_dir):
    sample = tmp_path / "held.jsonl"
    sample.write_text('{"text": "Kari Nordmann bor i Bergen."}\n{"text": "José Müller i Oslo."}\n')
    out = tmp_path / "cli-int8"
    args = ["export", "onnx", "--model", str(tiny_roberta_dir), "--output", str(out)]
    result = CliRunner().invoke(
        app, [*args, "--quantize", "int8", "--int8-floor", "0", "--sample", str(sample)]
    )
    assert result.exit_code == 0, result.output
    assert "fp32 parity" in result.output and "int8: entity agreement" in result.output
    assert json.loads((out / "export_report.json").read_text())["sample_texts"] == 2
    bad = CliRunner().invoke(app, [*args, "--quantize", "int4"])
    squashed = " ".join(bad.output.replace("│", " ").split())  # rich wraps the usage-error box
    assert bad.exit_code == 2 and "'int4' is not one of 'int8'" in squashed
