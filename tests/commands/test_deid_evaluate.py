"""De-identification evaluation: ``run_deid_evaluation`` invariants with detectors whose answers are known,
and ``loraner evaluate --deid`` end to end on a tiny random model (scores ~0; structure and privacy)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loraner.cli import app
from loraner.data import load_splits
from loraner.deid import validate_deid_config
from loraner.errors import ConfigError, ModelError
from loraner.eval.deid import run_deid_evaluation
from loraner.settings import load_config
from loraner.types import Entity, Span, SpanExample, WordExample

# The Nor-DeID fixture's training notes are deliberately malformed; the reader's repair warning is expected.
pytestmark = pytest.mark.filterwarnings("ignore:.*nested/overlapping spans dropped:UserWarning")

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data"
# PHI strings of the Nor-DeID holdout fixture: they may appear in the local report only.
HOLDOUT_PHI = ("Sjøvik", "40404040", "010116 12345")


class GoldDetector:
    """Answers with the gold spans of every view of the data (a perfect model)."""

    def __init__(self, cfg) -> None:
        self.gold: dict[str, list[Entity]] = {}
        for view in ("notes", "structured"):
            data = cfg.data.model_copy(update={"view": view}) if cfg.data.format == "nor-deid" else cfg.data
            for examples in load_splits(data).values():
                for ex in examples:
                    text, spans = (ex.text, ex.spans) if isinstance(ex, SpanExample) else word_spans(ex)
                    self.gold[text] = [Entity(s.label, text[s.start : s.end], s.start, s.end) for s in spans]

    def __call__(self, texts: Sequence[str]) -> list[list[Entity]]:
        return [self.gold[t] for t in texts]


def word_spans(ex: WordExample) -> tuple[str, list[Span]]:
    """Words joined by spaces and their IOB2 entities as character spans."""
    spans: list[Span] = []
    at = 0
    for token, tag in zip(ex.tokens, ex.tags, strict=True):
        if tag.startswith("I-") and spans and spans[-1].label == tag[2:] and spans[-1].end == at - 1:
            spans[-1] = Span(spans[-1].start, at + len(token), tag[2:])
        elif tag != "O":
            spans.append(Span(at, at + len(token), tag[2:]))
        at += len(token) + 1
    return " ".join(ex.tokens), spans


def nothing(texts: Sequence[str]) -> list[list[Entity]]:
    return [[] for _ in texts]


@pytest.fixture
def cfg(nordeid_preset):
    return load_config(nordeid_preset)


def micro(scores: dict, key: str) -> float:
    return scores["entity"]["micro"][key]


def test_when_detector_returns_gold_then_precision_recall_and_char_recall_are_1(cfg, tmp_path):
    result = run_deid_evaluation(Path("gold"), cfg, "train", predict_batch=GoldDetector(cfg))
    assert list(result["views"]) == ["notes", "structured"]  # the structured view, for comparison
    for view, variants in result["views"].items():
        assert list(variants) == ["without_recognizers", "with_recognizers"]
        plain = variants["without_recognizers"]
        assert (micro(plain, "precision"), micro(plain, "recall"), micro(plain, "f2")) == (1.0, 1.0, 1.0), (
            view
        )
        for scores in variants.values():
            assert scores["char_recall"] == 1.0 and scores["leak_count"] == 0
            assert set(scores["char_recall_per_type"].values()) == {1.0}
            assert scores["phi_chars"] == scores["protected_chars"] > 0


def test_when_operator_is_keep_then_char_recall_is_0_and_every_span_leaks(cfg, tmp_path):
    keep = validate_deid_config({"default": "keep"})
    report = tmp_path / "deid-report-train.md"
    gold = GoldDetector(cfg)
    result = run_deid_evaluation(Path("gold"), cfg, "train", keep, False, report=report, predict_batch=gold)
    scores = result["views"]["notes"]["without_recognizers"]
    gold_spans = sum(len(ex.spans) for ex in load_splits(cfg.data)["train"])
    assert scores["char_recall"] == 0.0 and scores["leak_count"] == gold_spans
    assert micro(scores, "precision") == 1.0  # the detector was right; the operator protected nothing
    assert "Fjellheim" in report.read_text(encoding="utf-8")  # the leak list names what leaked


def test_when_detector_finds_nothing_then_recognizers_still_protect_pattern_phi(cfg):
    result = run_deid_evaluation(Path("none"), cfg, "test", predict_batch=nothing, views=["notes"])
    without, with_ = (
        result["views"]["notes"]["without_recognizers"],
        result["views"]["notes"]["with_recognizers"],
    )
    assert without["char_recall"] == 0.0 and micro(without, "recall") == 0.0
    assert with_["char_recall"] > 0.0 and with_["char_recall_per_type"]["PHONE"] == 1.0  # tlf. 40404040


def test_when_report_is_written_then_phi_is_there_and_not_in_the_returned_scores(cfg, tmp_path):
    report = tmp_path / "deid-report-test.md"
    result = run_deid_evaluation(Path("none"), cfg, "test", predict_batch=nothing, report=report)
    text = report.read_text(encoding="utf-8")
    assert "keep it local" in text and "Predicted vs gold entities, grouped by type" in text
    assert text.count("### Note ") == 4  # 1 note x (2 views x 2 variants); at most 5 per section
    assert all(phi in text for phi in HOLDOUT_PHI)
    assert not any(phi in json.dumps(result) for phi in HOLDOUT_PHI)
    assert result["report"] == str(report)


@pytest.mark.parametrize(
    ("recognizers", "variants"),
    [
        (True, ["with_recognizers"]),
        (False, ["without_recognizers"]),
        ("both", ["without_recognizers", "with_recognizers"]),
    ],
)
def test_when_recognizers_is_chosen_then_those_variants_are_scored(cfg, recognizers, variants):
    result = run_deid_evaluation(Path("x"), cfg, "test", None, recognizers, predict_batch=nothing)
    assert list(result["views"]["notes"]) == variants


def test_when_split_or_recognizers_is_unknown_then_config_error(cfg):
    with pytest.raises(ConfigError, match="split 'dev' not in the data"):
        run_deid_evaluation(Path("x"), cfg, "dev", predict_batch=nothing)
    with pytest.raises(ConfigError, match="recognizers must be"):
        run_deid_evaluation(Path("x"), cfg, "test", None, "sometimes", predict_batch=nothing)


def test_when_data_is_word_level_then_words_become_text_with_char_spans(tmp_path):
    preset = tmp_path / "conll.yaml"
    splits = "{train: train, validation: dev, test: test}"
    data = f"{{format: conll, path: {FIXTURES / 'conll'}, splits: {splits}}}"
    preset.write_text(f"name: conll\ndata: {data}\n", encoding="utf-8")
    conll = load_config(preset)
    result = run_deid_evaluation(Path("gold"), conll, "test", predict_batch=GoldDetector(conll))
    scores = result["views"]["conll"]["without_recognizers"]
    assert scores["char_recall"] == 1.0 and micro(scores, "f1") == 1.0


# --- the CLI, on a real (tiny, random) model -----------------------------------------------------------


def test_when_evaluate_with_deid_then_json_has_scores_and_the_report_has_the_phi(
    nordeid_model, nordeid_preset, tmp_path
):
    target = tmp_path / "eval" / "eval-test.json"
    target.parent.mkdir()
    args = ["evaluate", "--model", str(nordeid_model), "--config", str(nordeid_preset), "--split", "test"]
    result = CliRunner().invoke(app, [*args, "--deid", "--output", str(target)])
    assert result.exit_code == 0, result.output
    metrics = json.loads(target.read_text(encoding="utf-8"))
    assert "test" in metrics  # the usual evaluation is still there
    deid = metrics["deid"]
    assert list(deid["views"]) == ["notes", "structured"]
    for variants in deid["views"].values():
        for scores in variants.values():
            assert 0.0 <= scores["char_recall"] <= 1.0 and scores["documents"] == 1
            assert {"precision", "recall", "f1", "f2"} <= set(scores["entity"]["micro"])
    report = tmp_path / "eval" / "deid-report-test.md"
    assert deid["report"] == str(report) and report.exists()
    assert "char recall" in result.stdout and "leaks" in result.stdout
    assert not any(phi in result.output for phi in HOLDOUT_PHI)  # counts only on the terminal
    assert not any(phi in target.read_text(encoding="utf-8") for phi in HOLDOUT_PHI)


def test_when_evaluate_deid_options_are_bad_then_one_line_error(nordeid_model, nordeid_preset, tmp_path):
    args = ["evaluate", "--model", str(nordeid_model), "--config", str(nordeid_preset), "--deid"]
    bad_mode = CliRunner().invoke(app, [*args, "--recognizers", "sometimes"])
    # A usage error (exit 2) from the option's declared choices, listed in --help too.
    squashed = " ".join(bad_mode.output.replace("│", " ").split())  # rich wraps the error box
    assert bad_mode.exit_code == 2 and "'sometimes' is not one of 'with', 'without', 'both'" in squashed
    bad_config = tmp_path / "deid.yaml"
    bad_config.write_text("per_type: {PATIENTS: redact}\n", encoding="utf-8")
    typo = CliRunner().invoke(app, [*args, "--deid-config", str(bad_config)])
    assert typo.exit_code == 1 and "unknown entity type 'PATIENTS'" in typo.output


def test_when_the_directory_holds_no_model_then_the_error_says_so(cfg, tmp_path):
    (tmp_path / "adapter_config.json").write_text("{}", encoding="utf-8")  # no labels anywhere
    with pytest.raises(ModelError, match="not a model directory"):
        run_deid_evaluation(tmp_path, cfg, "test")


def test_when_tidy_and_propagate_are_set_then_the_scores_and_the_report_say_so(cfg, tmp_path):
    config = validate_deid_config({"tidy": True, "propagate": ["PATIENT"]})
    report = tmp_path / "deid-report-test.md"
    result = run_deid_evaluation(
        Path("gold"), cfg, "test", config, False, report=report, predict_batch=GoldDetector(cfg)
    )
    assert (result["tidy"], result["propagate"]) == (True, ["PATIENT"])
    assert "tidy: True · propagate: PATIENT" in report.read_text(encoding="utf-8")
    assert result["views"]["notes"]["without_recognizers"]["char_recall"] == 1.0
