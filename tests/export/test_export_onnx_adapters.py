"""`loraner export onnx-adapters` from the command line, and an export that fails its checks ships no
graph (the library route itself: tests/inference/test_adapters_onnx.py)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from loraner.cli import app
from loraner.errors import ConfigError, ModelError
from loraner.export import onnx_adapters
from loraner.inference.adapters import MultiAdapterPredictor, named_adapters


def test_cli_exports_a_base_graph_and_its_adapters_ready_to_serve(
    tmp_path, tiny_roberta_dir, tiny_adapter_runs
):
    out = tmp_path / "graph"
    args = ["export", "onnx-adapters", "--base", str(tiny_roberta_dir), "--output", str(out)]
    places = f"places={tiny_adapter_runs['places'] / 'adapter'}"
    result = CliRunner().invoke(app, [*args, "--adapter", places, "--quantize", "none"])
    assert result.exit_code == 0, result.output
    assert "places: 4 LoRA layers; fp32 max |logit diff|" in result.output
    assert f"loraner serve --base {out} --adapters {out / 'adapters'}" in result.output
    report = json.loads((out / "export_report.json").read_text())
    assert report["quantization"] is None and report["adapters"]["places"]["fp32_max_abs_diff"] < 1e-3
    multi = MultiAdapterPredictor.from_pretrained(str(out), out / "adapters")
    assert multi.names == ["places"] and multi.pool.backend_name == "onnx"
    bad = CliRunner().invoke(app, [*args, "--adapter", "places"])
    assert bad.exit_code == 1 and "'places' is not NAME=PATH" in bad.output


def test_adapters_are_named_by_folder_and_name_equals_path(tmp_path, tiny_adapter_runs):
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "general").symlink_to(tiny_adapter_runs["general"] / "adapter")
    found = named_adapters(folder, ["places=/x/places"])
    assert found == {"general": folder / "general", "places": "/x/places"}
    with pytest.raises(ConfigError, match="no adapters"):
        named_adapters(None, [])


def test_an_int8_graph_below_the_agreement_floor_is_not_shipped(
    monkeypatch, tmp_path, tiny_roberta_dir, tiny_adapter_runs
):
    real = onnx_adapters.entity_parity

    def low(*args, **kwargs):  # the real check, its agreement made to fall short
        return {**real(*args, **kwargs), "entity_agreement": 0.5}

    monkeypatch.setattr(onnx_adapters, "entity_parity", low)
    out = tmp_path / "int8"
    adapters = {"places": tiny_adapter_runs["places"] / "adapter"}
    with pytest.raises(ModelError, match=r"below the floor 0\.9 .*places 0\.500"):
        onnx_adapters.export_onnx_adapters(tiny_roberta_dir, adapters, out, int8_floor=0.9)
    assert not (out / "lora_base.onnx").exists(), "no silent fall back to the fp32 graph"
    report = json.loads((out / "export_report.json").read_text())
    assert report["adapters"]["places"]["int8"]["entity_agreement"] == 0.5
    (kept_fp32,) = report["fp32_matmuls"]  # the upper half's feed-forward output projection of 2 layers
    assert "layer.1/output/dense" in kept_fp32
