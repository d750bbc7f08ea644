"""Adapters trained by different shipped presets, served side by side on one base: CoNLL's
``all-linear`` (saved as every linear name, the head's ``classifier`` among them), the clinical
five-module list with ``bias: lora_only``, Few-NERD's ``[query, value]``; and adapters that cannot join
the pool, refused up front with their name and the reason."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_adapters import TEXTS, same_entities

from loraner.inference import NERPredictor
from loraner.inference.adapters import AdapterLoadFailed, AdapterRefused, MultiAdapterPredictor


@pytest.fixture(scope="module")
def runs(preset_adapter_runs, tiny_adapter_runs) -> dict[str, Path]:
    """One adapter per preset recipe, plus the suite's ``general`` (three modules, ``lora_only``)."""
    return {
        **preset_adapter_runs,
        "fewnerd": tiny_adapter_runs["places"],
        "general": tiny_adapter_runs["general"],
    }


@pytest.fixture(scope="module")
def adapters(runs) -> dict[str, Path]:
    return {name: run / "adapter" for name, run in runs.items()}


@pytest.fixture(scope="module")
def merged(runs) -> dict[str, NERPredictor]:
    return {name: NERPredictor.from_pretrained(run / "merged") for name, run in runs.items()}


def saved_targets(adapter: Path) -> list[str] | str:
    return json.loads((adapter / "adapter_config.json").read_text())["target_modules"]


def test_the_presets_adapters_differ_as_users_adapters_do(adapters):
    targets = {name: saved_targets(a) for name, a in adapters.items()}
    assert "classifier" in targets["all_linear"]  # what broke add_adapter: the head among the targets
    assert sorted(targets["clinical"]) == ["intermediate.dense", "key", "output.dense", "query", "value"]
    assert sorted(targets["fewnerd"]) == ["query", "value"]
    biases = {n: json.loads((a / "adapter_config.json").read_text())["bias"] for n, a in adapters.items()}
    assert biases == {
        "all_linear": "none",
        "clinical": "lora_only",
        "fewnerd": "none",
        "general": "lora_only",
    }


@pytest.mark.parametrize("first", ["all_linear", "clinical", "fewnerd"])
def test_adapters_of_every_preset_load_side_by_side_and_match_their_merged_models(
    tiny_roberta_dir, adapters, merged, first
):
    # Whichever loads first creates the PEFT model; the others are added to it.
    order = [first, *(n for n in adapters if n != first)]
    multi = MultiAdapterPredictor.from_pretrained(str(tiny_roberta_dir), {n: adapters[n] for n in order})
    multi.predict(TEXTS[0], first)
    assert multi.pool.loaded == [first]
    pairs = [(text, order[i % len(order)]) for i, text in enumerate(TEXTS * 2)]
    got = multi.predict_batch([t for t, _ in pairs], [n for _, n in pairs])
    assert sorted(multi.pool.loaded) == sorted(order)
    for (text, name), entities in zip(pairs, got, strict=True):
        assert same_entities(entities, merged[name].predict(text)), (name, text)
    found = {name: sum(len(merged[name].predict(t)) for t in TEXTS) for name in order}
    assert all(found.values()), found  # each adapter finds something: parity compares real entities


def test_evicting_and_reloading_adapters_of_different_presets_keeps_each_ones_answers(
    tiny_roberta_dir, adapters, merged
):
    multi = MultiAdapterPredictor.from_pretrained(str(tiny_roberta_dir), adapters, max_loaded=2)
    for name in [*adapters, *reversed(adapters)]:
        got = multi.predict_batch(TEXTS, name)
        assert all(same_entities(g, merged[name].predict(t)) for g, t in zip(got, TEXTS, strict=True)), name
    assert multi.pool.evictions >= 4 and len(multi.pool.loaded) == 2
    # Only loaded lora_only adapters keep bias deltas.
    assert {n for d in multi.pool.bias_deltas.values() for n in d} <= {"clinical", "general"} & set(
        multi.pool.loaded
    )


def broken_copy(adapter: Path, out: Path, **config: object) -> Path:
    shutil.copytree(adapter, out)
    path = out / "adapter_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **config}))
    return out


def test_an_adapter_that_cannot_join_the_pool_is_refused_when_the_predictor_is_built(
    tmp_path, tiny_roberta_dir, adapters
):
    dora = broken_copy(adapters["fewnerd"], tmp_path / "dora", use_dora=True)
    with pytest.raises(AdapterRefused, match=r"adapter 'dora' .* a DoRA adapter"):
        MultiAdapterPredictor.from_pretrained(
            str(tiny_roberta_dir), {"ok": adapters["fewnerd"], "dora": dora}
        )
    prefix = broken_copy(adapters["fewnerd"], tmp_path / "prefix", peft_type="PREFIX_TUNING")
    with pytest.raises(AdapterRefused, match="a PREFIX_TUNING adapter"):
        MultiAdapterPredictor.from_pretrained(str(tiny_roberta_dir), {"prefix": prefix})


def test_weights_that_fit_no_linear_layer_of_the_base_are_refused(tmp_path, tiny_roberta_dir, adapters):
    from safetensors.torch import load_file, save_file

    out = shutil.copytree(adapters["fewnerd"], tmp_path / "moved")
    weights = out / "adapter_model.safetensors"
    state = load_file(str(weights))
    state = {k.replace("attention.self.query", "attention.output.LayerNorm"): v for k, v in state.items()}
    save_file(state, str(weights))
    with pytest.raises(
        AdapterRefused, match=r"adapter 'moved' .*LayerNorm is not a linear layer of the base"
    ):
        MultiAdapterPredictor.from_pretrained(str(tiny_roberta_dir), {"moved": out})


def test_weights_changed_after_start_up_are_refused_at_first_load(tmp_path, tiny_roberta_dir, adapters):
    late = shutil.copytree(adapters["clinical"], tmp_path / "late")
    multi = MultiAdapterPredictor.from_pretrained(str(tiny_roberta_dir), {"late": late})
    weights = late / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(AdapterRefused, match=r"adapter 'late' .* its weights cannot be read"):
        multi.predict(TEXTS[0], "late")
    assert multi.pool.loaded == []


def test_a_failed_load_leaves_the_pool_serving_the_others(monkeypatch, tiny_roberta_dir, adapters, merged):
    import peft

    multi = MultiAdapterPredictor.from_pretrained(
        str(tiny_roberta_dir), {"fewnerd": adapters["fewnerd"], "clinical": adapters["clinical"]}
    )
    multi.predict(TEXTS[0], "fewnerd")

    def out_of_memory(*args, **kwargs):  # what a box at its memory limit does half-way through a load
        raise MemoryError("out of memory")

    monkeypatch.setattr(peft, "set_peft_model_state_dict", out_of_memory)
    with pytest.raises(AdapterLoadFailed, match=r"adapter 'clinical' .* failed to load: out of memory"):
        multi.predict(TEXTS[0], "clinical")
    assert multi.pool.loaded == ["fewnerd"] and set(multi.pool.peft.peft_config) == {"fewnerd"}
    assert not any("clinical" in layer.lora_A for layer in lora_layers(multi))
    assert same_entities(multi.predict(TEXTS[0], "fewnerd"), merged["fewnerd"].predict(TEXTS[0]))
    monkeypatch.undo()
    assert same_entities(multi.predict(TEXTS[0], "clinical"), merged["clinical"].predict(TEXTS[0]))


def lora_layers(multi: MultiAdapterPredictor) -> list:
    from peft.tuners.lora import LoraLayer

    return [m for m in multi.pool.peft.modules() if isinstance(m, LoraLayer)]
