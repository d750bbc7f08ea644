"""An int8 base under fp32 adapters (``quantization="int8"``): base linear layers int8, LoRA, heads and
biases fp32; mixed batches, loading, eviction and the fingerprint check as with the fp32 base; the
entities agree with the fp32 pool's on trained adapters."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_adapters import TEXTS

from loraner.errors import ModelError
from loraner.inference.adapters import MultiAdapterPredictor
from loraner.inference.backends import resolve_base_quantization
from loraner.inference.int8 import Int8Linear


@pytest.fixture(scope="module")
def adapters(preset_adapter_runs, tiny_adapter_runs) -> dict[str, Path]:
    runs = {**preset_adapter_runs, **tiny_adapter_runs}
    return {name: run / "adapter" for name, run in runs.items()}


@pytest.fixture(scope="module")
def fp32(tiny_roberta_dir, adapters) -> MultiAdapterPredictor:
    return MultiAdapterPredictor.from_pretrained(str(tiny_roberta_dir), adapters)


@pytest.fixture(scope="module")
def int8(tiny_roberta_dir, adapters) -> MultiAdapterPredictor:
    return MultiAdapterPredictor.from_pretrained(str(tiny_roberta_dir), adapters, quantization="int8")


def spans(entities) -> list[tuple[str, int, int]]:
    return [(e.type, e.start, e.end) for e in entities]


def mixed(names: list[str]) -> tuple[list[str], list[str]]:
    pairs = [(text, names[i % len(names)]) for i, text in enumerate(TEXTS * 3)]
    return [t for t, _ in pairs], [n for _, n in pairs]


def test_the_base_linear_layers_are_int8_and_what_adapters_bring_is_fp32(int8, adapters):
    int8.predict_batch(*mixed(list(adapters)))  # every adapter loaded
    model = int8.pool.peft
    int8_layers = [n for n, m in model.named_modules() if isinstance(m, Int8Linear)]
    plain = [n for n, m in model.named_modules() if type(m) is torch.nn.Linear and ".lora_" not in n]
    # 2 layers x (q, k, v, attention out, intermediate, out), but the upper half's feed-forward output
    (kept,) = plain
    assert len(int8_layers) == 11 and ".layer.1.output.dense" in kept and "attention" not in kept
    lora = [p for n, p in model.named_parameters() if "lora_" in n]
    assert lora and all(p.dtype == torch.float32 for p in lora)
    assert all(h.weight.dtype == torch.float32 for h in int8.pool.heads.values())
    assert (
        int8.pool.fingerprint
        == MultiAdapterPredictor.from_pretrained(
            str(int8.pool.base_name), {"places": adapters["places"]}
        ).pool.fingerprint
    )  # the fp32 weights' fingerprint: adapters are checked against the real base


def test_int8_base_entities_agree_with_the_fp32_base_on_trained_adapters_in_mixed_batches(
    int8, fp32, adapters
):
    texts, names = mixed(list(adapters))
    got, want = int8.predict_batch(texts, names), fp32.predict_batch(texts, names)
    entities = sum(len(w) for w in want)
    assert entities >= 20, entities  # enough to compare
    same = sum(spans(g) == spans(w) for g, w in zip(got, want, strict=True))
    # Measured here (AVX2): 18 of 18 texts identical, F1 1.0; a little room for other CPUs' kernels.
    assert same >= len(texts) - 1, (same, len(texts))
    found = {(n, *s) for g, n in zip(got, names, strict=True) for s in spans(g)}
    wanted = {(n, *s) for w, n in zip(want, names, strict=True) for s in spans(w)}
    f1 = 2 * len(found & wanted) / (len(found) + len(wanted))
    print(f"int8 vs fp32 base: {same}/{len(texts)} texts identical, entity F1 {f1:.4f} ({entities} entities)")
    assert f1 >= 0.97, f1


def test_int8_pool_evicts_and_reloads_as_the_fp32_one(tiny_roberta_dir, adapters):
    multi = MultiAdapterPredictor.from_pretrained(
        str(tiny_roberta_dir), adapters, quantization="int8", max_loaded=2
    )
    first = multi.predict_batch(TEXTS, "clinical")
    for name in adapters:
        multi.predict_batch(TEXTS, name)
    assert multi.pool.evictions >= 2 and len(multi.pool.loaded) == 2
    assert multi.predict_batch(TEXTS, "clinical") == first  # reloaded onto int8 layers: same answers


def test_an_int8_base_refuses_an_adapter_of_another_base(tiny_roberta_factory, adapters):
    other = tiny_roberta_factory(["O", "B-X", "I-X"], seed=1)
    with pytest.raises(ModelError, match="was trained on"):
        MultiAdapterPredictor.from_pretrained(str(other), adapters, quantization="int8")


def test_base_quantization_choices(monkeypatch):
    from loraner.inference import backends

    assert resolve_base_quantization("none", "auto") == "none"
    assert resolve_base_quantization("int8", "fp32") == "int8"
    with pytest.raises(ModelError, match="fp32 activations"):
        resolve_base_quantization("int8", "bf16")
    with pytest.raises(ModelError, match="not one of none, int8, auto"):
        resolve_base_quantization("int4", "auto")
    # auto: int8 only where measured faster (no CPU class recorded yet), never with bf16 or off the CPU.
    assert resolve_base_quantization("auto", "auto") == "none"
    monkeypatch.setattr(backends, "int8_base_is_faster", lambda: True)
    assert resolve_base_quantization("auto", "auto") == "int8"
    assert resolve_base_quantization("auto", "bf16") == "none"
    assert resolve_base_quantization("auto", "fp32", device="cuda") == "none"
