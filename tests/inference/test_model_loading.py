"""Loading a model directory resolves it once (``ModelDir``): ``loraner.json`` is read once, whatever the
directory holds and whichever backend runs it."""

from __future__ import annotations

import builtins
import io
from pathlib import Path

import pytest

from loraner.inference import NERPredictor
from loraner.modeldir import META_FILE, ModelDir


@pytest.fixture
def meta_reads(monkeypatch) -> list[str]:
    """Every opening of a ``loraner.json`` for reading its text, by ``open()`` or pathlib (``read_text``
    and ``Path.open`` go through ``io.open``). Binary opens are left out: the readability check opens
    each file in ``rb`` without reading it."""
    reads: list[str] = []

    def counting(real):
        def open_(file, mode="r", *args, **kwargs):
            if Path(str(file)).name == META_FILE and "r" in mode and "b" not in mode:
                reads.append(str(file))
            return real(file, mode, *args, **kwargs)

        return open_

    monkeypatch.setattr(io, "open", counting(io.open))
    monkeypatch.setattr(builtins, "open", counting(builtins.open))
    return reads


@pytest.mark.parametrize(
    ("which", "kind", "backend"),
    [
        ("merged", "merged", "torch"),  # a LoRA run's merged model
        ("onnx", "onnx", "onnx"),  # an ONNX export: auto picks its graph
        ("adapter", "adapter", "torch"),  # an adapter: its base comes from loraner.json
    ],
)
def test_loading_a_model_directory_reads_loraner_json_once(
    which, kind, backend, meta_reads, tiny_adapter_runs, tiny_onnx_dir
):
    path = {
        "merged": tiny_adapter_runs["places"] / "merged",
        "onnx": tiny_onnx_dir,
        "adapter": tiny_adapter_runs["places"] / "adapter",
    }[which]
    predictor = NERPredictor.from_pretrained(path)
    assert meta_reads == [str(path / META_FILE)]
    assert predictor.info.backend == backend
    assert ModelDir(path).kind == kind
    assert predictor.predict("Ola Hansen flew from Bergen to Oslo.") is not None


def test_a_plain_checkpoint_has_no_loraner_json_to_read(meta_reads, tiny_roberta_dir):
    NERPredictor.from_pretrained(tiny_roberta_dir)
    assert meta_reads == []
    assert ModelDir(tiny_roberta_dir).kind == "checkpoint"


def test_serving_many_adapters_reads_each_adapters_loraner_json_once(
    meta_reads, tiny_adapter_runs, tiny_roberta_dir
):
    from loraner.inference.adapters import MultiAdapterPredictor

    adapters = {name: run / "adapter" for name, run in tiny_adapter_runs.items()}
    multi = MultiAdapterPredictor.from_pretrained(str(tiny_roberta_dir), adapters)
    multi.predict_batch(["Ola Hansen flew to Oslo."] * 2, ["general", "places"])
    assert sorted(meta_reads) == sorted(str(path / META_FILE) for path in adapters.values())
