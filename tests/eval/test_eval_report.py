"""report.md sections, the parameter table, sample rendering and the terminal summary."""

from __future__ import annotations

import pytest

from loraner.eval.report import (
    format_metrics_table,
    group_entities_by_type,
    parameter_table,
    render_markdown_table,
    render_sample,
    write_report,
)


def full_metrics() -> dict:
    return {
        "name": "phi-roberta-lora",
        "test": {
            "precision": 0.9123,
            "recall": 0.8765,
            "f1": 0.894,
            "accuracy": 0.9876,
            "loss": 0.0456,
            "examples": 150,
            "per_type": {
                "DATE": {"precision": 0.5, "recall": 0.25, "f1": 0.3333, "support": 4},
                "PERSON": {"precision": 0.95, "recall": 0.9, "f1": 0.9243, "support": 120},
                "ADDRESS": {"precision": 0.8, "recall": 0.7, "f1": 0.7467, "support": 30},
            },
        },
        "before": {"precision": 0.01, "recall": 0.02, "f1": 0.0133, "accuracy": 0.4, "loss": 2.5},
        "epochs": [
            {
                "epoch": 1,
                "train_loss": 0.91,
                "eval_loss": 0.52,
                "precision": 0.6,
                "recall": 0.5,
                "f1": 0.5455,
            },
            {
                "epoch": 2,
                "train_loss": 0.33,
                "eval_loss": None,
                "precision": 0.8,
                "recall": 0.7,
                "f1": 0.7467,
            },
        ],
        "params": {"total": 124_000_000, "trainable": 688_000},
        "timing": {"train_seconds": 3725.2},
        "config": {"name": "phi-roberta-lora", "model": {"name_or_path": "roberta-base"}, "lora": {"r": 16}},
    }


# --------------------------------------------------------------------------- parameter table


@pytest.mark.parametrize(
    ("total", "trainable", "expected"),
    [
        pytest.param(
            # 688,000 / 124,000,000 = 0.5548% -> "0.55%"; 124e6 / 688e3 = 180.2 -> "1:180"
            124_000_000,
            688_000,
            [
                ("Total parameters", "124,000,000"),
                ("Trainable parameters", "688,000"),
                ("Trainable %", "0.55%"),
                ("Frozen parameters", "123,312,000"),
                ("Ratio (trainable : total)", "1:180"),
            ],
            id="roberta-lora",
        ),
        pytest.param(
            # 50 / 1,000,000 = 0.005% (below 0.01%: digits kept rather than "0.00%")
            1_000_000,
            50,
            [
                ("Total parameters", "1,000,000"),
                ("Trainable parameters", "50"),
                ("Trainable %", "0.005%"),
                ("Frozen parameters", "999,950"),
                ("Ratio (trainable : total)", "1:20,000"),
            ],
            id="tiny-share",
        ),
        pytest.param(
            10,
            0,
            [
                ("Total parameters", "10"),
                ("Trainable parameters", "0"),
                ("Trainable %", "0.00%"),
                ("Frozen parameters", "10"),
                ("Ratio (trainable : total)", "n/a"),
            ],
            id="nothing-trainable",
        ),
    ],
)
def test_when_counting_parameters_then_rows_are_formatted(total, trainable, expected):
    assert parameter_table(total, trainable) == expected


@pytest.mark.parametrize(("total", "trainable"), [(10, 11), (-1, 0), (10, -1)])
def test_when_parameter_counts_are_impossible_then_value_error(total, trainable):
    with pytest.raises(ValueError):
        parameter_table(total, trainable)


def test_when_rendering_markdown_table_then_pipes_are_escaped():
    table = render_markdown_table(["a", "b"], [("x|y", 1), ("multi\nline", 2.5)])
    assert table.splitlines() == ["| a | b |", "| --- | --- |", "| x\\|y | 1 |", "| multi line | 2.5 |"]


# --------------------------------------------------------------------------- samples


def test_when_grouping_entities_then_types_and_texts_keep_order_and_duplicates():
    grouped = group_entities_by_type([("PER", "Ann"), ("LOC", "Oslo"), ("PER", "Bob"), ("PER", "Ann")])
    assert grouped == {"PER": ["Ann", "Bob", "Ann"], "LOC": ["Oslo"]}
    assert list(grouped) == ["PER", "LOC"]


def sample_rows(markdown: str) -> dict[str, tuple[str, str]]:
    rows = [line for line in markdown.splitlines() if line.startswith("| ")][2:]  # skip header, rule
    cells = [[c.strip() for c in row.strip("|").split(" | ")] for row in rows]
    return {c[0]: (c[1], c[2]) for c in cells}


@pytest.mark.parametrize(
    ("gold", "pred", "expected"),
    [
        pytest.param([("PER", "Ann")], [("PER", "Ann")], {"PER": ("✓ Ann", "✓ Ann")}, id="match"),
        pytest.param([("PER", "Ann")], [], {"PER": ("✗ Ann", "—")}, id="missed"),
        pytest.param([], [("DATE", "May")], {"DATE": ("—", "+ May")}, id="spurious"),
        pytest.param(
            [("LOC", "Oslo")],
            [("PER", "Oslo")],
            {"LOC": ("✗ Oslo (predicted: PER)", "—"), "PER": ("—", "+ Oslo (gold: LOC)")},
            id="wrong-type",
        ),
        pytest.param(
            # Ann twice in gold, once predicted: one match, one miss.
            [("PER", "Ann"), ("PER", "Ann")],
            [("PER", "Ann")],
            {"PER": ("✓ Ann; ✗ Ann", "✓ Ann")},
            id="counted-matching",
        ),
    ],
)
def test_when_rendering_sample_then_entities_are_marked(gold, pred, expected):
    markdown = render_sample("Ann met Ann in Oslo in May.", gold, pred)
    assert "Predicted vs gold entities, grouped by type" in markdown
    assert sample_rows(markdown) == expected


def test_when_sample_is_tokens_then_text_is_joined_and_titled():
    markdown = render_sample(["Ann", "lives", "here"], [("PER", "Ann")], [("PER", "Ann")], title="Sample 1")
    assert markdown.startswith("### Sample 1\n")
    assert "> Ann lives here" in markdown


def test_when_sample_has_no_entities_then_it_says_so():
    assert "_No entities in gold or prediction._" in render_sample("nothing here", [], [])


def test_when_sample_text_is_long_then_it_is_truncated():
    markdown = render_sample("x" * 50, [], [], max_chars=10)
    assert "> xxxxxxxxxx …" in markdown


# --------------------------------------------------------------------------- report.md


def test_when_writing_full_report_then_all_sections_and_numbers_are_present(tmp_path):
    images = {"confusion_matrix": str(tmp_path / "confusion_matrix.png"), "curves": "curves.png"}
    sample = render_sample("Ann", [("PERSON", "Ann")], [("PERSON", "Ann")], title="Sample 1")
    write_report(tmp_path, full_metrics(), [sample], images)
    text = (tmp_path / "report.md").read_text(encoding="utf-8")
    expected_fragments = [
        "# NER fine-tuning report: phi-roberta-lora",
        "Test set: 150 examples.",
        "| Base model | roberta-base |",
        "## Parameter efficiency",
        "| Ratio (trainable : total) | 1:180 |",
        "## Before vs after fine-tuning",
        "| F1 | 0.0133 | 0.8940 | +0.8807 |",
        "| Token accuracy | 0.4000 | 0.9876 | +0.5876 |",
        "| Loss | 2.5000 | 0.0456 | -2.4544 |",
        "## Per-epoch validation",
        "| 1 | 0.9100 | 0.5200 | 0.6000 | 0.5000 | 0.5455 |",
        "| 2 | 0.3300 | — | 0.8000 | 0.7000 | 0.7467 |",
        "## Per-type results (test)",
        "| PERSON | 0.9500 | 0.9000 | 0.9243 | 120 |",
        "![Confusion matrix (test)](confusion_matrix.png)",  # absolute path made relative
        "![Training curves](curves.png)",
        "## Samples (test)",
        "### Sample 1",
        "| train time | 1h 02m 05s |",
    ]
    for fragment in expected_fragments:
        assert fragment in text, fragment


def test_when_writing_report_then_per_type_rows_are_sorted_by_support_desc(tmp_path):
    path = tmp_path / "r.md"
    write_report(path, full_metrics(), [], {})
    text = path.read_text(encoding="utf-8")
    assert text.index("| PERSON |") < text.index("| ADDRESS |") < text.index("| DATE |")


def test_when_optional_parts_are_missing_then_report_still_renders(tmp_path):
    metrics = {
        "name": "bare",
        "test": {"precision": 0.5, "recall": 0.5, "f1": 0.5, "accuracy": 0.9},
        "before": None,
    }
    write_report(tmp_path / "out", metrics, [], {})
    text = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "# NER fine-tuning report: bare" in text
    assert "| F1 | 0.5000 |" in text
    assert "No evaluation before fine-tuning" in text
    for absent in ("Parameter efficiency", "Per-epoch", "Per-type", "Samples", "Timing", "Setup"):
        assert absent not in text


# --------------------------------------------------------------------------- terminal summary


def test_when_formatting_run_metrics_then_before_after_and_types_are_shown():
    text = format_metrics_table(full_metrics())
    assert text.splitlines()[0] == "phi-roberta-lora: test set"
    assert "+0.8807" in text  # F1 delta
    assert text.index("PERSON") < text.index("ADDRESS") < text.index("DATE")
    assert "1:180" in text


def test_when_formatting_bare_evaluation_then_scores_are_shown_without_before():
    scores = {"precision": 0.5, "recall": 0.25, "f1": 1 / 3, "accuracy": 0.75, "loss": 0.1, "per_type": {}}
    text = format_metrics_table(scores)
    assert "before" not in text
    assert "F1" in text and "0.3333" in text and "Loss" in text


def test_when_many_types_then_terminal_table_is_capped():
    per_type = {f"T{i:02d}": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": i} for i in range(30)}
    text = format_metrics_table(
        {"precision": 1.0, "recall": 1.0, "f1": 1.0, "accuracy": 1.0, "per_type": per_type}
    )
    assert "... and 10 more types" in text
    assert "T29" in text and "T00" not in text
