"""Many adapters on one base: parity with each adapter's merged model, mixed batches, LRU, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForTokenClassification

from loraner.errors import ConfigError, ModelError
from loraner.inference import NERPredictor
from loraner.inference.adapters import (
    MultiAdapterPredictor,
    UnknownAdapter,
    adapter_dirs,
    check_adapter_name,
)
from loraner.inference.encoding import pad

TEXTS = [
    "Ola Hansen flew from Bergen to Oslo with NRK.",
    "Ada Lovelace lives in Tromsø.",
    "Yesterday Google hired Kari Nordmann in Trondheim, far from Oslo.",
    "Nothing here.",
    "",
    "Åse Bjørnstad met reporters from Google in Bergen. " * 4,  # several windows (max_length 32)
]


def same_entities(got, want) -> bool:
    """Same spans and types; scores equal within float noise (unmerged LoRA vs merged weights)."""
    return [(e.type, e.start, e.end) for e in got] == [(e.type, e.start, e.end) for e in want] and all(
        abs(g.score - w.score) < 1e-4 for g, w in zip(got, want, strict=True)
    )


@pytest.fixture(scope="module")
def adapters(tiny_adapter_runs) -> dict[str, Path]:
    return {name: run / "adapter" for name, run in tiny_adapter_runs.items()}


@pytest.fixture(scope="module")
def multi(tiny_roberta_dir, adapters) -> MultiAdapterPredictor:
    return MultiAdapterPredictor.from_pretrained(str(tiny_roberta_dir), adapters)


@pytest.fixture(scope="module")
def merged(tiny_adapter_runs) -> dict[str, NERPredictor]:
    return {name: NERPredictor.from_pretrained(run / "merged") for name, run in tiny_adapter_runs.items()}


def test_the_two_adapters_really_differ(multi, merged):
    assert merged["general"].labels != merged["places"].labels
    assert merged["general"].word_split == "conll" and merged["places"].word_split == "tokenizer"
    found = {name: sum(len(e) for e in p.predict_batch(TEXTS)) for name, p in merged.items()}
    assert all(found.values()), found  # both found something: parity below compares real entities


@pytest.mark.parametrize("order", ["grouped", "interleaved"])
def test_when_texts_mix_adapters_then_each_gets_its_merged_models_entities(multi, merged, order):
    names = ["general", "places"]
    if order == "grouped":
        pairs = [(t, n) for n in names for t in TEXTS]
    else:
        pairs = [(t, names[i % 2]) for i, t in enumerate(TEXTS + TEXTS)]
    got = multi.predict_batch([t for t, _ in pairs], [n for _, n in pairs])
    for (text, name), entities in zip(pairs, got, strict=True):
        assert same_entities(entities, merged[name].predict(text)), (name, text)


def test_when_rows_of_two_adapters_share_a_pass_then_logits_equal_the_merged_models(multi, tiny_adapter_runs):
    tokenizer = multi.tokenizer
    encoded = [tokenizer(t)["input_ids"][:32] for t in TEXTS[:4]]
    ids, mask = pad(encoded, tokenizer.pad_token_id)
    names = ["general", "places", "places", "general"]
    for name in set(names):
        multi.predictor(name)  # loaded
    rows = multi.pool.logits(ids, mask, names)
    for name in set(names):
        model = AutoModelForTokenClassification.from_pretrained(tiny_adapter_runs[name] / "merged").eval()
        with torch.inference_mode():
            expected = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).logits
        for i, row_name in enumerate(names):
            if row_name == name:
                real = mask[i].astype(bool)
                np.testing.assert_allclose(rows[i][real], expected[i].numpy()[real], atol=1e-4, rtol=1e-4)


def test_bias_lora_only_adapters_do_not_leak_their_biases_into_others(multi):
    # "general" trained the biases of its LoRA layers; "places" did not: its rows must see the base's.
    assert multi.pool.bias_deltas, "general trained biases: they must be kept per adapter"
    assert all(set(d) == {"general"} for d in multi.pool.bias_deltas.values())


def test_when_the_cap_is_reached_then_the_least_recently_used_adapter_is_evicted(
    tiny_roberta_dir, adapters, merged
):
    multi = MultiAdapterPredictor.from_pretrained(str(tiny_roberta_dir), adapters, max_loaded=1)
    assert multi.pool.loaded == []  # nothing loads before it is used
    first = multi.predict_batch(TEXTS, "general")
    assert multi.pool.loaded == ["general"]
    multi.predict_batch(TEXTS, "places")
    assert multi.pool.loaded == ["places"] and multi.pool.evictions == 1
    assert not multi.pool.bias_deltas  # general's biases went with it
    assert multi.predict_batch(TEXTS, "general") == first  # reloaded, same answers
    assert multi.pool.evictions == 2
    assert [i.loaded for i in multi.adapter_info()] == [True, False]
    assert [(i.name, i.loads, i.evictions) for i in multi.adapter_info()] == [
        ("general", 2, 1),
        ("places", 1, 1),
    ]
    multi.pool.logits(*pad([[0, 2]], 1), ["places"])  # evicted by another caller: loaded again
    assert multi.pool.loaded == ["places"]
    with pytest.raises(ModelError, match="adapter 'medication' is not configured"):
        multi.pool.logits(*pad([[0, 2]], 1), ["medication"])


def test_a_pass_needing_more_adapters_than_the_cap_keeps_them_all_for_the_pass(
    tiny_roberta_dir, adapters, merged
):
    multi = MultiAdapterPredictor.from_pretrained(str(tiny_roberta_dir), adapters, max_loaded=1)
    names = ["general", "places"] * 3
    got = multi.predict_batch(TEXTS, names)
    for text, name, entities in zip(TEXTS, names, got, strict=True):
        assert same_entities(entities, merged[name].predict(text)), (name, text)
    assert len(multi.pool.loaded) == 1  # over the cap during each pass only


def test_when_two_adapters_fit_then_both_stay_and_the_most_recent_is_last(multi):
    multi.predict("Oslo", "general")
    multi.predict("Oslo", "places")
    multi.predict("Oslo", "general")
    assert multi.pool.loaded == ["places", "general"]


def test_unknown_names_list_the_available_ones(multi):
    with pytest.raises(UnknownAdapter, match="unknown adapter 'medication'; available: general, places"):
        multi.predict("Oslo", "medication")
    with pytest.raises(UnknownAdapter, match="no adapter named and no default"):
        multi.predict("Oslo")  # two adapters, no default
    with pytest.raises(UnknownAdapter):
        multi.predict("Oslo", "../places/adapter")  # names are looked up, never joined to paths
    with pytest.raises(ConfigError, match="2 adapter names for 1 texts"):
        multi.predict_batch(["Oslo"], ["general", "places"])


def test_a_default_adapter_answers_requests_that_name_none(tiny_roberta_dir, adapters, merged):
    multi = MultiAdapterPredictor.from_pretrained(str(tiny_roberta_dir), adapters, default="places")
    assert same_entities(multi.predict(TEXTS[0]), merged["places"].predict(TEXTS[0]))
    with pytest.raises(ConfigError, match="default adapter 'x' is not one of general, places"):
        MultiAdapterPredictor(multi.pool, multi.tokenizer, adapters, default="x")


@pytest.mark.parametrize("name", ["../etc", "a/b", "..", "", "a\\b", "tab\there"])
def test_adapter_names_must_be_plain(name):
    with pytest.raises(ConfigError, match="not a plain name"):
        check_adapter_name(name)


def test_a_folder_of_adapters_is_named_by_its_sub_folders(tmp_path, tiny_adapter_runs):
    for name, run in tiny_adapter_runs.items():
        (tmp_path / name).symlink_to(run / "adapter")
    (tmp_path / "notes").mkdir()  # not an adapter: ignored
    assert sorted(adapter_dirs(tmp_path)) == ["general", "places"]
    with pytest.raises(ModelError, match="no adapter sub-folders"):
        adapter_dirs(tmp_path / "notes")


def test_when_the_base_is_not_the_one_trained_on_then_loading_names_both(tiny_roberta_factory, adapters):
    other = tiny_roberta_factory(["O", "B-X", "I-X"], seed=1)  # same architecture, other weights
    with pytest.raises(ModelError, match=rf"was trained on .* but the base {other} has fingerprint"):
        MultiAdapterPredictor.from_pretrained(str(other), adapters)


def test_one_adapter_on_a_named_base_through_the_ordinary_predictor(tiny_roberta_dir, adapters, merged):
    predictor = NERPredictor.from_pretrained(adapters["places"], base=str(tiny_roberta_dir))
    got, want = predictor.predict_batch(TEXTS), merged["places"].predict_batch(TEXTS)
    assert all(same_entities(g, w) for g, w in zip(got, want, strict=True))
    with pytest.raises(ModelError, match="goes with a LoRA adapter directory"):
        NERPredictor.from_pretrained(tiny_roberta_dir, base=str(tiny_roberta_dir))


def test_bf16_weights_run_and_agree_with_fp32(tiny_roberta_dir, adapters, merged):
    multi = MultiAdapterPredictor.from_pretrained(str(tiny_roberta_dir), adapters, dtype="bf16")
    assert multi.pool.dtype == "bf16"
    got = multi.predict_batch(TEXTS, ["general"] * len(TEXTS))
    want = merged["general"].predict_batch(TEXTS)
    same = sum(
        same_entities(g, w) or [e.start for e in g] == [e.start for e in w]
        for g, w in zip(got, want, strict=True)
    )
    assert same >= len(TEXTS) - 1  # bf16 may move a borderline token; nearly every text is identical


def test_predict_and_deid_commands_take_an_adapter_on_a_base(tiny_roberta_dir, adapters, merged):
    import json

    from typer.testing import CliRunner

    from loraner.cli import app

    runner = CliRunner()
    text = TEXTS[0]
    args = ["--adapter", str(adapters["places"]), "--base", str(tiny_roberta_dir), text]
    result = runner.invoke(app, ["predict", *args])
    assert result.exit_code == 0, result.output
    found = [(e["type"], e["start"], e["end"]) for e in json.loads(result.stdout)["entities"]]
    assert found == [(e.type, e.start, e.end) for e in merged["places"].predict(text)]
    deid = runner.invoke(app, ["deid", *args])
    assert deid.exit_code == 0, deid.output
    assert "[LOC]" in json.loads(deid.stdout)["text"] or not found
    both = runner.invoke(
        app, ["predict", "--model", str(tiny_roberta_dir), "--adapter", str(adapters["places"]), text]
    )
    assert both.exit_code == 1 and "either --model DIR or --adapter DIR" in both.output


def test_a_base_loaded_in_bf16_has_the_fingerprint_it_had_in_fp32(tiny_roberta_dir):
    from loraner.inference.backends import load_token_classifier
    from loraner.modeldir import base_fingerprint

    fp32 = load_token_classifier(tiny_roberta_dir)
    bf16 = load_token_classifier(tiny_roberta_dir, dtype="bf16")
    assert next(bf16.parameters()).dtype == torch.bfloat16  # loaded as bf16, no fp32 copy kept
    assert base_fingerprint(bf16) == base_fingerprint(fp32)


def test_o_threshold_is_checked_and_applied_as_the_single_model_predictor_does(multi, merged):
    with pytest.raises(ConfigError, match="o_threshold must be in"):
        multi.predict_batch(TEXTS, "places", o_threshold=1.5)
    plain = multi.predict_batch(TEXTS, "places")
    eager = multi.predict_batch(TEXTS, "places", o_threshold=0.99)
    assert sum(map(len, eager)) > sum(map(len, plain))  # the threshold reached the decoder
    want = merged["places"].predict_batch(TEXTS, o_threshold=0.99)
    assert all(same_entities(g, w) for g, w in zip(eager, want, strict=True))
