"""`loraner train / evaluate / merge` end to end on a tiny random RoBERTa with the real tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from huggingface_hub import ModelCard
from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline
from typer.testing import CliRunner

from loraner.cli import app
from loraner.data import load_splits
from loraner.data.examples import as_span_example
from loraner.inference.backends import load_adapter_model
from loraner.inference.predictor import NERPredictor
from loraner.scores import entity_f1
from loraner.settings import load_config

FIXTURE_DATA = Path(__file__).parents[1] / "fixtures" / "train"
runner = CliRunner()


CONLL_DATA = {
    "format": "conll",
    "path": str(FIXTURE_DATA),
    "splits": {"train": "train.txt", "validation": "dev.txt", "test": "test.txt"},
}
# The same sentences as character spans, punctuation attached to the word before it (not word-split).
SPAN_DATA = {"format": "jsonl", "path": str(FIXTURE_DATA / "spans")}


def write_config(tmp_path: Path, model_dir: Path, data: dict | None = None, **lora: object) -> Path:
    config = {
        "name": "tiny",
        "data": data or CONLL_DATA,
        "model": {"name_or_path": str(model_dir), "max_length": 32, "stride": 8},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["query", "value"], **lora},
        "training": {
            "epochs": 3,
            "batch_size": 4,
            "learning_rate": 0.05,
            "warmup_ratio": 0.0,
            "logging_steps": 2,
            "mixed_precision": "no",  # fp32 on every CPU: scores are compared with fp32 evaluations
        },
        "report": {"samples": 2},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def assert_world_readable(model_dir: Path) -> None:
    """A model mounted into the serving image is read by another user (uid 10001); safetensors alone
    would write 0600."""
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in model_dir.rglob("*") if p.is_file()}
    assert modes and all(int(m, 8) & 0o044 == 0o044 for m in modes.values()), modes


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tiny_roberta_dir) -> Path:
    tmp = tmp_path_factory.mktemp("lora-run")
    config = write_config(tmp, tiny_roberta_dir, bias="lora_only")
    invoke("train", str(config), "--output", str(tmp / "out"))
    return tmp / "out"


def test_when_training_then_all_artifacts_are_written(lora_run):
    for name in ("metrics.json", "report.md", "confusion_matrix.png", "confusion_matrix.csv", "curves.png"):
        assert (lora_run / name).is_file(), name
    assert (lora_run / "adapter" / "adapter_config.json").is_file()
    assert (lora_run / "merged" / "model.safetensors").is_file()
    for model_dir in (lora_run / "adapter", lora_run / "merged"):
        assert_world_readable(model_dir)
    metrics = json.loads((lora_run / "metrics.json").read_text())
    for key in ("precision", "recall", "f1", "accuracy", "per_type"):
        assert key in metrics["test"] and key in metrics["before"]
    assert set(metrics["test"]["per_type"]) <= {"PER", "LOC", "ORG"}
    assert [row["epoch"] for row in metrics["epochs"]] == [1, 2, 3]
    assert metrics["test"]["f1"] > metrics["before"]["f1"] + 0.2  # it learned something
    assert 0 < metrics["params"]["trainable"] < metrics["params"]["total"]
    report = (lora_run / "report.md").read_text()
    assert "confusion_matrix.png" in report and "grouped by type" in report.lower()


def test_when_merged_then_plain_transformers_loads_it_and_logits_match_adapter(lora_run):
    merged_dir = lora_run / "merged"
    merged = AutoModelForTokenClassification.from_pretrained(str(merged_dir)).eval()
    assert merged.config.id2label[1].startswith("B-")
    unmerged = load_adapter_model(lora_run / "adapter")
    tokenizer = AutoTokenizer.from_pretrained(str(merged_dir))
    batch = tokenizer(["José Müller flew to Oslo .", "NRK hired Li Wei"], return_tensors="pt", padding=True)
    with torch.inference_mode():
        a = merged(**batch).logits
        b = unmerged(**batch).logits
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    ner = pipeline("token-classification", model=str(merged_dir), aggregation_strategy="first")
    assert isinstance(ner("Ada Lovelace lives in Oslo ."), list)


def test_when_merge_cli_then_output_equals_training_merge(lora_run, tmp_path):
    invoke("merge", "--adapter", str(lora_run / "adapter"), "--output", str(tmp_path / "m"))
    assert (tmp_path / "m" / "model.safetensors").is_file()
    assert_world_readable(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "loraner.json").read_text())
    assert meta["labels"][0] == "O"
    assert meta["word_split"] == "conll"  # CoNLL words were trained: inference must cut text the same way
    # The adapter's card comes along, as the merged model's: same scores, Transformers usage.
    carried, trained = (
        ModelCard.load(tmp_path / "m" / "README.md"),
        ModelCard.load(lora_run / "merged" / "README.md"),
    )
    assert carried.data.to_dict() == trained.data.to_dict()
    assert carried.text == trained.text


@pytest.mark.parametrize("kind", ["adapter", "merged"])
def test_when_training_then_each_model_dir_has_a_card_whose_numbers_are_metrics_json(lora_run, kind):
    metrics = json.loads((lora_run / "metrics.json").read_text())
    card = ModelCard.load(lora_run / kind / "README.md")  # huggingface_hub's own parser of the metadata
    data = card.data
    assert data.library_name == {"adapter": "peft", "merged": "transformers"}[kind]
    assert data.pipeline_tag == "token-classification"
    assert {"token-classification", "ner", "lora", "loraner"} <= set(data.tags)
    assert data.base_model is None  # a local checkpoint: no hub id to name
    assert data.model_name == "tiny" and data.datasets is None  # local CoNLL files are not on the hub
    scores = {r.metric_type: r.metric_value for r in data.eval_results}
    assert scores == {k: metrics["test"][k] for k in ("precision", "recall", "f1", "accuracy")}
    assert {(r.task_type, r.dataset_split, r.dataset_type) for r in data.eval_results} == {
        ("token-classification", "test", "conll")
    }
    text = card.text
    for label in metrics["labels"]:
        assert f"`{label}`" in text
    assert f"| Trainable parameters | {metrics['params']['trainable']:,} |" in text
    assert f"| F1 | {metrics['before']['f1']:.4f} | {metrics['test']['f1']:.4f} |" in text
    for name, scores_of_type in metrics["test"]["per_type"].items():
        assert f"| {name} | {scores_of_type['precision']:.4f} |" in text
    assert "| LoRA rank r / alpha | 4 / 8 |" in text and "| LoRA targets | query, value |" in text
    assert str(FIXTURE_DATA.parent) not in text  # absolute local paths stay out of a card


def test_when_evaluating_merged_model_then_scores_equal_training_report(lora_run, tmp_path, tiny_roberta_dir):
    config = write_config(tmp_path, tiny_roberta_dir)
    out = tmp_path / "eval.json"
    invoke("evaluate", "--model", str(lora_run), "--config", str(config), "--output", str(out))
    evaluated = json.loads(out.read_text())["test"]
    trained = json.loads((lora_run / "metrics.json").read_text())["test"]
    for key in ("precision", "recall", "f1", "accuracy"):
        assert evaluated[key] == pytest.approx(trained[key], abs=1e-6), key


def test_when_resuming_then_training_continues_from_checkpoint(lora_run, tmp_path, tiny_roberta_dir):
    config = write_config(tmp_path, tiny_roberta_dir, bias="lora_only")
    out = tmp_path / "out"
    invoke("train", str(config), "--output", str(out), "--set", "training.epochs=1")
    invoke("train", str(config), "--output", str(out), "--set", "training.epochs=2", "--resume")
    epochs = json.loads((out / "metrics.json").read_text())["epochs"]
    assert [row["epoch"] for row in epochs] == [1, 2]


def test_when_lora_disabled_then_full_model_is_saved(tmp_path, tiny_roberta_dir):
    config = write_config(tmp_path, tiny_roberta_dir)
    out = tmp_path / "full"
    invoke(
        "train",
        str(config),
        "--output",
        str(out),
        "--set",
        "lora.enabled=false",
        "--set",
        "training.epochs=1",
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["params"]["trainable"] == metrics["params"]["total"]
    assert not (out / "adapter").exists() and (out / "merged" / "config.json").is_file()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("lora.rank=4", "lora.rank"),  # typo: unknown key
        ("training.epochs=-1", "training.epochs"),
        ("model.name_or_path=/nonexistent/model", "/nonexistent/model"),
        ("lora.target_modules=[nonexistent_layer]", "target modules"),
    ],
)
def test_when_config_is_bad_then_clear_error_and_exit_1(tmp_path, tiny_roberta_dir, override, message):
    config = write_config(tmp_path, tiny_roberta_dir)
    result = runner.invoke(app, ["train", str(config), "--output", str(tmp_path / "x"), "--set", override])
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_when_training_then_epoch_validation_scores_match_a_fresh_evaluation(
    lora_run, tmp_path, tiny_roberta_dir
):
    # The best epoch is the model kept, so its logged validation scores must be reproducible from the
    # saved model: this fails if per-epoch predictions are ever mapped to the wrong windows.
    config = write_config(tmp_path, tiny_roberta_dir)
    out = tmp_path / "val.json"
    args = ["--config", str(config), "--split", "validation", "-o", str(out)]
    invoke("evaluate", "--model", str(lora_run), *args)
    fresh = json.loads(out.read_text())["validation"]
    epochs = json.loads((lora_run / "metrics.json").read_text())["epochs"]
    best = max(epochs, key=lambda row: row["f1"])
    for key in ("precision", "recall", "f1", "accuracy"):
        assert fresh[key] == pytest.approx(best[key], abs=1e-6), key


@pytest.fixture(scope="module")
def span_run(tmp_path_factory, tiny_roberta_dir) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("span-run")
    config = write_config(tmp, tiny_roberta_dir, data=SPAN_DATA)
    invoke("train", str(config), "--output", str(tmp / "out"), "--set", "training.epochs=2")
    return tmp / "out", config


@pytest.mark.parametrize("unit", ["words", "spans"])
def test_when_evaluating_then_the_score_is_that_of_the_predictors_entities(
    unit, lora_run, span_run, tmp_path, tiny_roberta_dir
):
    """What ``loraner evaluate`` reports is what a user of the predictor gets: the F1 of the entities
    ``predict_batch`` returns for the test texts, scored against the gold spans."""
    if unit == "words":
        run, config = lora_run, write_config(tmp_path, tiny_roberta_dir)
    else:
        run, config = span_run
    out = tmp_path / "eval.json"
    invoke("evaluate", "--model", str(run), "--config", str(config), "--output", str(out))
    reported = json.loads(out.read_text())["test"]
    gold = [as_span_example(ex) for ex in load_splits(load_config(config).data)["test"]]
    predicted = NERPredictor.from_pretrained(run / "merged").predict_batch([ex.text for ex in gold])
    assert reported["examples"] == len(gold)
    assert reported["f1"] == pytest.approx(entity_f1([ex.spans for ex in gold], predicted), abs=1e-9)
    assert reported["f1"] > 0.0  # a real comparison: the model found some entities
