"""Adapters on ONNX Runtime (``loraner export onnx-adapters``, then the ONNX pool): one int8 base graph
whose LoRA branches, bias deltas and head are inputs, each adapter an ``.onnx_adapter``. Adapters of every
shipped preset's recipe agree with their PyTorch fp32 selves in mixed batches; the pool evicts, refuses
by name and checks the base's fingerprint as the PyTorch pool does; and it runs without torch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from test_adapters import TEXTS, same_entities

from loraner.errors import ModelError
from loraner.inference.adapters import AdapterRefused, MultiAdapterPredictor, adapter_dirs
from loraner.inference.onnx_adapters import BIAS_DELTA, LORA_A, read_adapter_shapes

PRESETS = ["all_linear", "clinical", "fewnerd", "general"]


@pytest.fixture(scope="module")
def adapters(onnx_adapters_dir) -> dict[str, Path]:
    return adapter_dirs(onnx_adapters_dir / "adapters")


@pytest.fixture(scope="module")
def onnx_multi(onnx_adapters_dir, adapters) -> MultiAdapterPredictor:
    return MultiAdapterPredictor.from_pretrained(str(onnx_adapters_dir), adapters)


@pytest.fixture(scope="module")
def torch_multi(tiny_roberta_dir, adapters) -> MultiAdapterPredictor:
    # The exported adapter folders are still PEFT adapters: the PyTorch pool serves the same folders.
    return MultiAdapterPredictor.from_pretrained(str(tiny_roberta_dir), adapters, backend="torch")


def spans(entities) -> list[tuple[str, int, int]]:
    return [(e.type, e.start, e.end) for e in entities]


def mixed(names: list[str]) -> tuple[list[str], list[str]]:
    """Every text once per adapter, interleaved: each batch mixes adapters."""
    pairs = [(text, name) for text in TEXTS for name in names]
    return [t for t, _ in pairs], [n for _, n in pairs]


def test_one_int8_base_graph_carries_the_union_of_the_adapters_layers_with_fp32_lora_inputs(
    onnx_adapters_dir, onnx_multi, adapters
):
    assert sorted(adapters) == PRESETS
    pool = onnx_multi.pool
    assert pool.backend_name == "onnx" and pool.quantization == "int8"
    assert onnx_multi.info.backend == "onnx" and "(int8)" in onnx_multi.info.name
    # all-linear adapts every linear layer of the 2-layer base: q, k, v, attention out, intermediate, out.
    assert len(pool.layers) == 12
    graph = onnx.load(str(onnx_adapters_dir / "lora_base.onnx"))
    integer = [n for n in graph.graph.node if n.op_type in ("MatMulInteger", "DynamicQuantizeLinear")]
    assert integer, "the base's linear layers are not int8"
    inputs = {i.name for i in graph.graph.initializer if i.name.startswith(LORA_A)}
    consumers = {n.op_type for n in graph.graph.node for i in n.input if i in inputs}
    assert len(inputs) == 12 and consumers <= {"MatMul", "Transpose"}, consumers  # LoRA stays fp32
    layers = {name: read_adapter_shapes(path / "adapter.onnx_adapter") for name, path in adapters.items()}
    adapted = {name: {k for k in shapes if k.startswith(LORA_A)} for name, shapes in layers.items()}
    assert [len(adapted[n]) for n in PRESETS] == [12, 12, 4, 8]  # different target lists, one graph
    biased = {name for name, shapes in layers.items() if any(k.startswith(BIAS_DELTA) for k in shapes)}
    assert biased == {"clinical", "general"}  # bias: lora_only changes the base's biases: fed per adapter


def test_mixed_batches_over_every_presets_adapter_agree_with_the_pytorch_fp32_adapters(
    onnx_multi, torch_multi
):
    texts, names = mixed(PRESETS)
    got, want = onnx_multi.predict_batch(texts, names), torch_multi.predict_batch(texts, names)
    entities = sum(len(w) for w in want)
    assert entities >= 20, entities
    assert {n for w, n in zip(want, names, strict=True) if w} == set(PRESETS)  # each finds something
    same = sum(spans(g) == spans(w) for g, w in zip(got, want, strict=True))
    found = {(n, i, *s) for i, (g, n) in enumerate(zip(got, names, strict=True)) for s in spans(g)}
    wanted = {(n, i, *s) for i, (w, n) in enumerate(zip(want, names, strict=True)) for s in spans(w)}
    f1 = 2 * len(found & wanted) / (len(found) + len(wanted))
    print(f"onnx int8 vs torch fp32 adapters: {same}/{len(texts)} texts identical, F1 {f1:.4f} ({entities})")
    assert same >= len(texts) - 1 and f1 >= 0.97, (same, f1)
    assert sorted(onnx_multi.pool.loaded) == PRESETS


def test_an_fp32_base_graph_answers_as_pytorch_does(onnx_adapters_fp32_dir, tiny_adapter_runs):
    multi = MultiAdapterPredictor.from_pretrained(
        str(onnx_adapters_fp32_dir), onnx_adapters_fp32_dir / "adapters"
    )
    assert multi.pool.quantization == "none"
    texts, names = mixed(["general", "places"])
    from loraner.inference import NERPredictor

    merged = {n: NERPredictor.from_pretrained(r / "merged") for n, r in tiny_adapter_runs.items()}
    for text, name, got in zip(texts, names, multi.predict_batch(texts, names), strict=True):
        assert same_entities(got, merged[name].predict(text)), (name, text)


def test_the_pool_evicts_and_reloads_keeping_each_adapters_answers(onnx_adapters_dir, adapters, onnx_multi):
    small = MultiAdapterPredictor.from_pretrained(str(onnx_adapters_dir), adapters, max_loaded=2)
    for name in [*PRESETS, *reversed(PRESETS)]:
        got = small.predict_batch(TEXTS, name)
        assert [spans(g) for g in got] == [spans(w) for w in onnx_multi.predict_batch(TEXTS, name)], name
        assert small.pool.loaded[-1] == name and len(small.pool.loaded) <= 2
    assert small.pool.evictions >= 4
    texts, names = mixed(PRESETS)  # a batch needing more adapters than the cap still answers
    got = small.predict_batch(texts, names)
    assert [spans(g) for g in got] == [spans(w) for w in onnx_multi.predict_batch(texts, names)]
    assert len(small.pool.loaded) == 2
    assert [a.loaded for a in small.adapter_info()].count(True) == 2


def test_a_peft_adapter_without_its_onnx_form_is_refused_by_name(onnx_adapters_dir, tiny_adapter_runs):
    with pytest.raises(AdapterRefused, match=r"adapter 'raw' .* no adapter\.onnx_adapter.*onnx-adapters"):
        MultiAdapterPredictor.from_pretrained(
            str(onnx_adapters_dir), {"raw": tiny_adapter_runs["places"] / "adapter"}
        )


def test_an_adapter_of_layers_the_graph_has_no_branch_for_is_refused_by_name(
    onnx_adapters_fp32_dir, adapters
):
    # That graph was exported with general and places alone: no LoRA branch on key or intermediate.dense.
    with pytest.raises(
        AdapterRefused, match=r"adapter 'wide' .* it adapts \S+, where this base graph has no"
    ):
        MultiAdapterPredictor.from_pretrained(str(onnx_adapters_fp32_dir), {"wide": adapters["all_linear"]})


def test_a_head_that_does_not_fit_its_labels_and_a_foreign_base_are_refused(
    tmp_path, onnx_adapters_dir, adapters
):
    relabelled = shutil.copytree(adapters["fewnerd"], tmp_path / "relabelled")
    meta = relabelled / "loraner.json"
    data = json.loads(meta.read_text())
    meta.write_text(json.dumps({**data, "labels": [*data["labels"], "B-EXTRA", "I-EXTRA"]}))
    with pytest.raises(AdapterRefused, match=r"adapter 'relabelled' .* its head is .* lists \d+ labels"):
        MultiAdapterPredictor.from_pretrained(str(onnx_adapters_dir), {"relabelled": relabelled})
    foreign = shutil.copytree(adapters["fewnerd"], tmp_path / "foreign")
    meta = foreign / "loraner.json"
    meta.write_text(json.dumps({**data, "base_fingerprint": {"config": "0" * 16, "weights": "1" * 16}}))
    with pytest.raises(ModelError, match="load it onto the base it was trained on"):
        MultiAdapterPredictor.from_pretrained(str(onnx_adapters_dir), {"foreign": foreign})


def test_a_bias_all_adapter_is_refused_at_export_naming_the_layer(
    tmp_path, tiny_roberta_dir, tiny_adapter_runs
):
    from safetensors.torch import load_file, save_file

    from loraner.export.onnx_adapters import export_onnx_adapters

    adapter = shutil.copytree(tiny_adapter_runs["places"] / "adapter", tmp_path / "all")
    weights = adapter / "adapter_model.safetensors"
    state = load_file(str(weights))
    norm = "base_model.model.roberta.encoder.layer.0.attention.output.LayerNorm.bias"
    state[norm] = state[next(k for k in state if k.endswith("classifier.bias"))].new_ones(32) * 0.5
    save_file(state, str(weights))
    config = adapter / "adapter_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "bias": "all"}))
    with pytest.raises(AdapterRefused, match=r"adapter 'all' .* trains the bias of \S+LayerNorm"):
        export_onnx_adapters(tiny_roberta_dir, {"all": adapter}, tmp_path / "out")


def test_a_base_graph_alone_is_not_a_model(onnx_adapters_dir):
    from loraner.inference import NERPredictor

    with pytest.raises(ModelError, match=r"a base graph for LoRA adapters .* --adapters"):
        NERPredictor.from_pretrained(onnx_adapters_dir)


NO_TORCH = """
import json, sys
for name in ("torch", "peft", "transformers", "safetensors.torch"):
    sys.modules[name] = None  # any import of them raises ImportError: the ONNX image has none
from loraner.inference.adapters import MultiAdapterPredictor
multi = MultiAdapterPredictor.from_pretrained(sys.argv[1], sys.argv[2], max_loaded=2)
texts, names = json.loads(sys.argv[3])
found = multi.predict_batch(texts, names)
print(json.dumps({"spans": [[[e.type, e.start, e.end] for e in row] for row in found],
                  "evictions": multi.pool.evictions}))
"""


def test_the_onnx_route_imports_and_serves_without_torch(onnx_adapters_dir, onnx_multi):
    texts, names = mixed(PRESETS)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            NO_TORCH,
            str(onnx_adapters_dir),
            str(onnx_adapters_dir / "adapters"),
            json.dumps([texts, names]),
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    want = [[list(s) for s in spans(w)] for w in onnx_multi.predict_batch(texts, names)]
    assert answer["spans"] == want and answer["evictions"] >= 2


def test_a_mixed_pass_runs_once_per_adapter_each_group_cut_to_its_own_width(monkeypatch, onnx_multi):
    pool = onnx_multi.pool
    calls = []
    run = pool._run

    def counting(ids, mask, adapter):  # the real run, counted
        calls.append(ids.shape)
        return run(ids, mask, adapter)

    monkeypatch.setattr(pool, "_run", counting)
    ids = np.array([[0, 5, 6, 7, 2], [0, 5, 2, 1, 1], [0, 8, 9, 2, 1]])
    mask = (ids != 1).astype(np.int64)
    out = pool.logits(ids, mask, ["general", "fewnerd", "general"])
    assert sorted(calls) == [(1, 3), (2, 5)]
    assert [o.shape[0] for o in out] == [5, 3, 5]
    assert out[0].shape[1] == len(onnx_multi.adapters["general"].meta.labels)
