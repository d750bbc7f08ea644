"""Backends take their runtime as a parameter: an injected InferenceSession stands in for onnxruntime."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from loraner.errors import ModelError
from loraner.inference.backends import OnnxBackend, load_backend, resolve_backend_name


class FakeSession:
    """The slice of onnxruntime.InferenceSession that OnnxBackend uses."""

    def __init__(self, inputs: list[str], n_labels: int = 3) -> None:
        self.inputs = inputs
        self.n_labels = n_labels
        self.feeds: list[dict[str, np.ndarray]] = []

    def get_inputs(self):
        return [SimpleNamespace(name=n) for n in self.inputs]

    def get_outputs(self):
        return [SimpleNamespace(name="logits")]

    def run(self, output_names, feed):
        self.feeds.append(feed)
        batch, seq = feed["input_ids"].shape
        return [np.ones((batch, seq, self.n_labels), dtype=np.float64)]


def test_onnx_backend_feeds_only_declared_inputs_and_zero_token_types():
    ids = np.array([[0, 5, 2]], dtype=np.int64)
    mask = np.ones_like(ids)
    bert_like = FakeSession(["input_ids", "attention_mask", "token_type_ids"])
    out = OnnxBackend(bert_like).logits(ids, mask)
    assert out.dtype == np.float32 and out.shape == (1, 3, 3)
    assert bert_like.feeds[0]["token_type_ids"].tolist() == [[0, 0, 0]]
    ids_only = FakeSession(["input_ids"])
    OnnxBackend(ids_only).logits(ids, mask)
    assert set(ids_only.feeds[0]) == {"input_ids"}


def test_auto_backend_prefers_onnx_when_the_directory_has_it(tmp_path):
    assert resolve_backend_name(tmp_path, "auto") == "torch"
    (tmp_path / "model.onnx").write_bytes(b"")
    assert resolve_backend_name(tmp_path, "auto") == "onnx"
    assert resolve_backend_name(tmp_path, "torch") == "torch"


@pytest.mark.parametrize(
    ("quantization", "torch_weights", "cpu_bf16", "expected"),
    [
        ("int8", True, True, "onnx"),  # int8 is the fastest on every CPU class measured
        ("int8", False, False, "onnx"),
        ("none", True, True, "torch"),  # bf16 weights beat an fp32 graph where bf16 is native
        ("none", True, False, "onnx"),  # emulated bf16: the fp32 graph beats torch fp32
        ("none", False, True, "onnx"),  # nothing else to run
    ],
)
def test_auto_backend_picks_the_fastest_runtime_the_directory_offers_on_this_cpu(
    tmp_path, monkeypatch, quantization, torch_weights, cpu_bf16, expected
):
    from loraner.inference import backends
    from loraner.modeldir import ModelMeta, write_meta

    monkeypatch.setattr(backends, "native_bf16", lambda: cpu_bf16)
    (tmp_path / "model.onnx").write_bytes(b"")
    write_meta(tmp_path, ModelMeta(labels=["O", "B-X"], onnx={"quantization": quantization}))
    if torch_weights:
        (tmp_path / "model.safetensors").write_bytes(b"")
    assert resolve_backend_name(tmp_path, "auto") == expected
    assert resolve_backend_name(tmp_path, "onnx") == "onnx"


def _openvino_dir(path, quantization, onnx=None, torch_weights=False):
    """A directory holding an OpenVINO IR (as the file layout says; contents unread by the decision)."""
    from loraner.modeldir import ModelMeta, write_meta

    (path / "openvino").mkdir()
    (path / "openvino" / "model.xml").write_bytes(b"")
    (path / "openvino" / "model.bin").write_bytes(b"")
    meta = {"openvino": {"quantization": quantization}}
    if onnx:
        (path / "model.onnx").write_bytes(b"")
        meta["onnx"] = {"quantization": onnx}
    if torch_weights:
        (path / "model.safetensors").write_bytes(b"")
    write_meta(path, ModelMeta(labels=["O", "B-X"], **meta))
    return path


@pytest.mark.parametrize(
    ("cpu", "quantization", "onnx", "torch_weights", "expected"),
    [
        ("AMX", "int8", "int8", True, "openvino"),  # measured faster there than ONNX int8
        ("AMX", "int8", None, True, "openvino"),
        ("AVX2", "int8", "int8", True, "onnx"),  # not faster here: today's choice stays
        ("AVX2", "int8", None, True, "torch"),
        ("AVX512-BF16", "int8", "int8", False, "onnx"),  # not measured: today's choice stays
        ("AMX", "none", "int8", True, "onnx"),  # an fp32 IR was never measured faster
        ("AVX2", "none", None, False, "openvino"),  # nothing else to run
        ("AVX2", "int8", None, False, "openvino"),
    ],
)
def test_auto_takes_an_int8_openvino_ir_only_on_a_cpu_class_where_the_bench_measured_it_faster(
    tmp_path, monkeypatch, cpu, quantization, onnx, torch_weights, expected
):
    from loraner.inference import backends

    monkeypatch.setattr(backends, "cpu_class", lambda flags=None: cpu)
    monkeypatch.setattr(backends, "native_bf16", lambda: False)
    model = _openvino_dir(tmp_path, quantization, onnx, torch_weights)
    assert resolve_backend_name(model, "auto") == expected
    assert resolve_backend_name(model, "openvino") == "openvino"
    assert resolve_backend_name(model, "auto", device="cuda") != "openvino", "OpenVINO runs on cpu here"


def test_every_cpu_class_in_the_table_is_one_cpu_class_names():
    from typing import get_args

    from loraner.inference.backends import FASTEST_INT8, CpuClass

    assert set(FASTEST_INT8) <= set(get_args(CpuClass))
    assert set(FASTEST_INT8.values()) <= {"onnx", "openvino"}


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile"}, "AMX"),
        ({"avx2", "avx512f", "avx512_vnni", "avx512_bf16"}, "AVX512-BF16"),
        ({"avx2", "avx512f", "avx512_vnni"}, "AVX512-VNNI"),
        ({"avx2", "fma", "sse4_2"}, "AVX2"),
        (set(), "other"),
    ],
)
def test_cpu_class_from_flags(flags, expected):
    from loraner.inference.backends import cpu_class

    assert cpu_class(frozenset(flags)) == expected


def test_when_the_openvino_ir_is_broken_or_missing_then_model_error(tmp_path):
    from loraner.inference.backends import OpenVinoBackend

    pytest.importorskip("openvino")
    _openvino_dir(tmp_path, "none")
    (tmp_path / "openvino" / "model.xml").write_text("<net>not an IR", encoding="utf-8")
    with pytest.raises(ModelError, match="OpenVINO cannot load it"):
        load_backend(tmp_path, "openvino")
    with pytest.raises(ModelError, match="no OpenVINO IR"):
        OpenVinoBackend.from_file(tmp_path / "missing.xml")
    with pytest.raises(ModelError, match="cpu only"):
        load_backend(tmp_path, "openvino", device="cuda")
    with pytest.raises(ModelError, match=r"It holds an OpenVINO IR \(openvino/\): use backend='openvino'"):
        load_backend(tmp_path, "torch")


def test_when_onnx_file_is_broken_then_model_error(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="onnxruntime cannot load it"):
        load_backend(tmp_path, "onnx")
    with pytest.raises(ModelError, match="no ONNX model"):
        load_backend(tmp_path, "onnx", onnx_file="missing.onnx")


@pytest.mark.parametrize("labels", [None, ["O", "B-X", "I-X"]])
def test_a_bf16_load_reads_tensor_by_tensor_and_equals_transformers_own(tiny_roberta_dir, labels):
    import torch
    from transformers import AutoModelForTokenClassification

    from loraner.inference.backends import load_token_classifier

    ours = load_token_classifier(tiny_roberta_dir, labels, dtype="bf16")
    head = {}
    if labels:
        id2label = dict(enumerate(labels))
        head = {"num_labels": 3, "id2label": id2label, "ignore_mismatched_sizes": True}
    theirs = AutoModelForTokenClassification.from_pretrained(tiny_roberta_dir, dtype=torch.bfloat16, **head)
    mine, ref = ours.state_dict(), theirs.state_dict()
    assert mine.keys() == ref.keys() and ours.dtype == torch.bfloat16
    differing = {k for k in mine if not torch.equal(mine[k], ref[k])}
    # A new head is drawn at random (both ways): everything read from the file is identical.
    assert differing <= ({"classifier.weight"} if labels else set())
    assert ours.config.id2label == theirs.config.id2label
    assert ours.name_or_path == theirs.name_or_path == str(tiny_roberta_dir)


def test_a_bf16_load_of_a_masked_lm_checkpoint_gets_a_new_head(tmp_path, tiny_roberta_dir):
    import torch
    from transformers import AutoConfig, RobertaForMaskedLM

    from loraner.inference.backends import load_token_classifier

    torch.manual_seed(0)
    RobertaForMaskedLM(AutoConfig.from_pretrained(tiny_roberta_dir)).save_pretrained(tmp_path)
    model = load_token_classifier(tmp_path, ["O", "B-X", "I-X"], dtype="bf16")
    assert model.classifier.out_features == 3 and model.dtype == torch.bfloat16
    encoder = (
        RobertaForMaskedLM.from_pretrained(tmp_path).roberta.encoder.layer[0].attention.self.query.weight
    )
    assert torch.equal(model.roberta.encoder.layer[0].attention.self.query.weight, encoder.to(torch.bfloat16))


@pytest.mark.parametrize(("cpu_bf16", "expected"), [(True, "bfloat16"), (False, "float32")])
def test_a_predictor_loads_bf16_weights_by_default_only_where_the_cpu_has_native_bf16(
    tiny_roberta_dir, monkeypatch, cpu_bf16, expected
):
    from loraner.inference import NERPredictor, backends

    monkeypatch.setattr(backends, "native_bf16", lambda: cpu_bf16)
    predictor = NERPredictor.from_pretrained(tiny_roberta_dir)
    assert str(next(predictor.backend.model.parameters()).dtype) == f"torch.{expected}"
    assert predictor.predict("Ola Hansen flew to Oslo.") is not None
    pinned = NERPredictor.from_pretrained(tiny_roberta_dir, dtype="fp32")
    assert str(next(pinned.backend.model.parameters()).dtype) == "torch.float32"


@pytest.mark.skipif(
    not (shutil.which("c++") or shutil.which("g++")), reason="torch.compile (inductor) needs a C++ compiler"
)
def test_a_compiled_torch_backend_compiles_once_and_gives_the_eager_logits_for_every_batch_shape(
    monkeypatch, tiny_roberta_dir
):
    import torch
    import torch._inductor.config as inductor_config
    from torch._dynamo.utils import counters

    from loraner.inference import NERPredictor

    # One compile worker: the tiny graph's few kernels build sooner in-process than a worker pool starts.
    monkeypatch.setattr(inductor_config, "compile_threads", 1)
    eager = NERPredictor.from_pretrained(tiny_roberta_dir, backend="torch", dtype="fp32")
    compiled = NERPredictor.from_pretrained(tiny_roberta_dir, backend="torch", dtype="fp32", compile=True)
    assert isinstance(compiled.backend.model, torch._dynamo.eval_frame.OptimizedModule)
    assert compiled.backend.vocab_size == eager.backend.vocab_size
    graphs = counters["stats"]["unique_graphs"]
    # The warm-up a server makes before it reports ready: one window, a batch of size 1, compiles...
    compiled.check()
    assert counters["stats"]["unique_graphs"] == graphs + 1
    # ...a graph that serves every batch size after it (1 again, padded batches) and every length.
    rng = np.random.default_rng(0)
    for batch, length in ((4, 12), (1, 9), (2, 30)):
        ids = rng.integers(5, 200, size=(batch, length), dtype=np.int64)
        mask = np.ones_like(ids)
        mask[1:, length - 3 :] = 0  # rows after the first padded, as the engine pads a batch
        np.testing.assert_allclose(
            compiled.backend.logits(ids, mask), eager.backend.logits(ids, mask), rtol=1e-4, atol=1e-4
        )
    texts = ["Ola Hansen flew to Oslo.", "Kari Nordmann bor i Bergen og jobber i Tromsø om sommeren."]
    got_batch, want_batch = compiled.predict_batch(texts), eager.predict_batch(texts)
    assert all(want_batch)  # entities to compare in both texts (the tiny model's random ones)
    for got, want in [*zip(got_batch, want_batch, strict=True), (compiled.predict(texts[1]), want_batch[1])]:
        assert [(e.type, e.start, e.end) for e in got] == [(e.type, e.start, e.end) for e in want]
        assert [e.score for e in got] == pytest.approx([e.score for e in want], abs=1e-5)
    assert counters["stats"]["unique_graphs"] == graphs + 1


def test_the_compile_flag_reaches_the_predictor_from_predict_and_serve(monkeypatch, tiny_roberta_dir):
    from typer.testing import CliRunner

    from loraner.cli import app
    from loraner.inference import NERPredictor
    from loraner.serve.settings import ServeSettings

    seen: dict[str, object] = {}

    def record(*args, **kwargs):
        seen.update(kwargs)
        raise ModelError("stop here")

    monkeypatch.setattr(NERPredictor, "from_pretrained", record)
    result = CliRunner().invoke(app, ["predict", "--model", str(tiny_roberta_dir), "--compile", "Oslo"])
    assert "stop here" in result.output and seen["compile"] is True
    monkeypatch.setenv("LORANER_COMPILE", "1")
    assert ServeSettings.from_env(model=str(tiny_roberta_dir)).compile is True
    assert ServeSettings.from_env(model=str(tiny_roberta_dir), compile=False).compile is False
