"""The registry, sampling, label maps and one contract test over every reader."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from loraner.data import get_reader, load_splits, supported_formats
from loraner.data.registry import join_spans, relabel
from loraner.data.sampling import sample_examples, sample_size, sample_splits
from loraner.errors import ConfigError
from loraner.settings import DataConfig
from loraner.types import Span, SpanExample, WordExample

ALL_FORMATS = ["conll", "fewnerd-hub", "fewnerd-txt", "hf", "jsonl", "label-studio", "nor-deid", "synth"]


def test_when_registry_listed_then_every_config_format_is_registered() -> None:
    assert supported_formats() == ALL_FORMATS


def test_when_format_unknown_then_error_lists_supported() -> None:
    with pytest.raises(ConfigError, match="supported: conll, fewnerd-hub"):
        get_reader("csv")


@pytest.mark.parametrize(
    ("fmt", "folder", "extra"),
    [
        ("conll", "conll", {"splits": {"train": "train", "validation": "dev", "test": "test"}}),
        ("fewnerd-txt", "fewnerd", {"splits": {"train": "train", "validation": "dev", "test": "test"}}),
        ("jsonl", "jsonl", {}),
        ("label-studio", "labelstudio/export.json", {}),
        ("nor-deid", "nordeid", {}),
        ("synth", None, {"synth_counts": {"train": 3, "validation": 1, "test": 1}}),
    ],
)
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_when_any_local_reader_then_splits_hold_valid_examples(
    fixtures: Path, fmt: str, folder: str | None, extra: dict[str, object]
) -> None:
    cfg = DataConfig.model_validate(
        {"format": fmt, "path": str(fixtures / folder) if folder else None, **extra}
    )
    splits = load_splits(cfg)
    assert list(splits) == ["train", "validation", "test"]
    for examples in splits.values():
        assert examples
        for ex in examples:
            if isinstance(ex, WordExample):
                assert len(ex.tokens) == len(ex.tags)
                assert all(t == "O" or t[:2] in ("B-", "I-") for t in ex.tags)
            else:
                assert ex.spans == sorted(ex.spans)
                assert all(0 <= s.start < s.end <= len(ex.text) for s in ex.spans)
                assert all(a.end <= b.start for a, b in zip(ex.spans, ex.spans[1:], strict=False))


# --- sampling ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "available", "expected"),
    [
        (None, 10, 10),  # None keeps all
        (3, 10, 3),  # a count
        (0.5, 10, 5),  # a fraction
        (1.0, 10, 10),
        (0.01, 10, 1),  # a tiny fraction still keeps one
        (50, 10, 10),  # more than available keeps all
    ],
)
def test_when_sample_requested_then_size_follows(
    request_: int | float | None, available: int, expected: int
) -> None:
    assert sample_size(request_, available, "train") == expected


@pytest.mark.parametrize("bad", [-1, 1.5, 0.0, True])
def test_when_sample_invalid_then_config_error(bad: int | float) -> None:
    with pytest.raises(ConfigError, match=r"data\.sample\.train"):
        sample_size(bad, 10, "train")


def test_when_sampling_then_seeded_and_order_kept() -> None:
    examples = [SpanExample(text=str(i), id=str(i)) for i in range(100)]
    first = sample_examples(examples, 10, seed=1, split="train")  # type: ignore[arg-type]
    assert first == sample_examples(examples, 10, seed=1, split="train")  # type: ignore[arg-type]
    assert first != sample_examples(examples, 10, seed=2, split="train")  # type: ignore[arg-type]
    ids = [int(e.id) for e in first]
    assert ids == sorted(ids)


def test_when_more_requested_than_available_then_all_kept_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    examples = [SpanExample(text="x")]
    with caplog.at_level(logging.INFO, logger="loraner.data.sampling"):
        assert sample_splits({"train": examples}, {"train": 5}, seed=0)["train"] == examples  # type: ignore[dict-item]
    assert "only 1 exist" in caplog.text


def test_when_sample_names_unknown_split_then_config_error() -> None:
    with pytest.raises(ConfigError, match="dev"):
        sample_splits({"train": []}, {"dev": 1}, seed=0)


def test_when_config_sample_then_load_splits_applies_it(fixtures: Path) -> None:
    cfg = DataConfig(
        format="conll", path=str(fixtures / "conll"), splits={"train": "train"}, sample={"train": 2}
    )
    assert len(load_splits(cfg)["train"]) == 2


# --- label maps -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (["B-PER", "I-PER", "O"], ["B-PATIENT", "I-PATIENT", "O"]),  # renamed
        (["B-MISC", "I-MISC", "B-LOC"], ["O", "O", "B-LOC"]),  # mapped to O: dropped; others kept
    ],
)
def test_when_label_map_then_word_tags_renamed(tags: list[str], expected: list[str]) -> None:
    example = WordExample(tokens=["w"] * len(tags), tags=tags)
    assert relabel(example, {"PER": "PATIENT", "MISC": "O"}).tags == expected  # type: ignore[union-attr]


def test_when_label_map_then_spans_renamed() -> None:
    example = SpanExample(text="ab", spans=[Span(0, 1, "PER"), Span(1, 2, "MISC")])
    assert relabel(example, {"PER": "PATIENT", "MISC": "O"}).spans == [Span(0, 1, "PATIENT")]  # type: ignore[union-attr]


def test_when_join_spans_then_name_parts_on_one_line_become_one_span() -> None:
    text = "Kari  Nordmann og Ola\nHansen, Bergen Oslo"
    parts = [
        Span(0, 4, "PATIENT"),
        Span(6, 14, "PATIENT"),  # spaces only between: joined
        Span(18, 21, "PATIENT"),
        Span(22, 28, "PATIENT"),  # a line break between: kept apart
        Span(30, 36, "LOC"),
        Span(37, 41, "LOC"),  # a type not listed: kept apart
    ]
    joined = join_spans(SpanExample(text=text, spans=parts), frozenset({"PATIENT"}))
    assert [(s.label, text[s.start : s.end]) for s in joined.spans] == [  # type: ignore[union-attr]
        ("PATIENT", "Kari  Nordmann"),
        ("PATIENT", "Ola"),
        ("PATIENT", "Hansen"),
        ("LOC", "Bergen"),
        ("LOC", "Oslo"),
    ]


def test_when_join_spans_then_word_tags_continue() -> None:
    example = WordExample(tokens=["Kari", "Nordmann", "og", "Ola"], tags=["B-PER", "B-PER", "O", "B-PER"])
    assert join_spans(example, frozenset({"PER"})).tags == ["B-PER", "I-PER", "O", "B-PER"]  # type: ignore[union-attr]


def test_when_config_joins_spans_then_load_splits_applies_it_after_label_map(tmp_path: Path) -> None:
    path = tmp_path / "test.jsonl"
    path.write_text(
        '{"text": "Kari Nordmann", "spans": [{"start": 0, "end": 4, "label": "First"},'
        ' {"start": 5, "end": 13, "label": "Last"}]}\n',
        encoding="utf-8",
    )
    cfg = DataConfig(
        format="jsonl",
        path=str(tmp_path),
        splits={"test": "test.jsonl"},
        label_map={"First": "PATIENT", "Last": "PATIENT"},
        join_spans=["PATIENT"],
    )
    assert load_splits(cfg)["test"][0].spans == [Span(0, 13, "PATIENT")]  # type: ignore[union-attr]
