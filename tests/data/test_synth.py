from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from loraner.data import load_splits
from loraner.data.jsonl import read_span_file
from loraner.data.synth import (
    LABELS,
    format_date,
    generate_notes,
    synth_splits,
    write_synth,
)
from loraner.errors import ConfigError
from loraner.fnr import valid_fnr
from loraner.settings import DataConfig
from loraner.types import SpanExample

pytest.importorskip("faker")


@pytest.fixture(scope="module")
def notes() -> list[SpanExample]:
    return generate_notes(300, seed=7)


def test_when_same_seed_then_identical_notes() -> None:
    assert generate_notes(20, seed=3) == generate_notes(20, seed=3)


def test_when_other_seed_then_different_notes() -> None:
    assert generate_notes(5, seed=3) != generate_notes(5, seed=4)


def test_when_generated_then_spans_are_sorted_tight_and_inside(notes: list[SpanExample]) -> None:
    for note in notes:
        previous_end = 0
        for span in note.spans:
            piece = note.text[span.start : span.end]
            assert previous_end <= span.start < span.end <= len(note.text)
            assert piece == piece.strip() and piece
            previous_end = span.end


def test_when_generated_then_every_label_and_both_languages_appear(notes: list[SpanExample]) -> None:
    labels = {s.label for n in notes for s in n.spans}
    assert labels == set(LABELS)
    texts = "\n".join(n.text for n in notes)
    assert "Epikrise" in texts or "Innkomstjournal" in texts or "Henvisning" in texts
    assert "Discharge" in texts or "Admission" in texts or "Referral" in texts
    assert re.search("[æøåÆØÅ]", "".join(n.text[s.start : s.end] for n in notes for s in n.spans))


def test_when_generated_then_distractor_numbers_are_unlabelled(notes: list[SpanExample]) -> None:
    # Digits outside any span (blood pressure, doses, ICD codes) keep the task from being "tag digits".
    unlabelled_digits = 0
    for note in notes:
        mask = [True] * len(note.text)
        for span in note.spans:
            mask[span.start : span.end] = [False] * (span.end - span.start)
        unlabelled_digits += sum(1 for ch, free in zip(note.text, mask, strict=True) if free and ch.isdigit())
    assert unlabelled_digits > 1000
    assert any(re.search(r"\b\d{2,3}/\d{2,3}\b", n.text) for n in notes)  # blood pressure


def test_when_eleven_digit_ids_then_checksums_valid(notes: list[SpanExample]) -> None:
    ids = [n.text[s.start : s.end] for n in notes for s in n.spans if s.label == "ID"]
    national = [i for i in ids if re.fullmatch(r"\d{6} ?\d{5}", i)]
    assert len(national) > 20
    assert all(valid_fnr(i) for i in national)
    assert len(set(ids)) > len(national)  # other ID formats too


def test_when_date_styles_vary_then_formats_differ() -> None:
    day = date(2021, 3, 9)
    norwegian = {format_date(day, s, True) for s in range(6)}
    english = {format_date(day, s, False) for s in range(7)}
    assert "9. mars 2021" in norwegian and "09.03.2021" in norwegian
    assert "March 9, 2021" in english and "3/9/2021" in english
    assert len(norwegian) == 6 and len(english) == 7


def test_when_split_counts_given_then_splits_sized_and_distinct() -> None:
    splits = synth_splits({"train": 6, "test": 3}, seed=1)
    assert {k: len(v) for k, v in splits.items()} == {"train": 6, "test": 3}
    assert splits["train"][0] != splits["test"][0]
    # a split does not change when another split's count changes
    assert synth_splits({"train": 2, "test": 3}, seed=1)["test"] == splits["test"]


def test_when_written_then_jsonl_reads_back(tmp_path: Path) -> None:
    paths = write_synth(tmp_path, {"train": 4, "validation": 2, "test": 2}, seed=5)
    assert sorted(p.name for p in paths.values()) == ["test.jsonl", "train.jsonl", "validation.jsonl"]
    assert read_span_file(paths["train"]) == synth_splits({"train": 4}, seed=5)["train"]


def test_when_synth_format_then_counts_from_config_and_files_written(tmp_path: Path) -> None:
    cfg = DataConfig(format="synth", path=str(tmp_path), synth_counts={"train": 5, "test": 2}, seed=9)
    splits = load_splits(cfg)
    assert {k: len(v) for k, v in splits.items()} == {"train": 5, "test": 2}
    assert (tmp_path / "train.jsonl").is_file()


def test_when_only_english_locale_then_english_notes() -> None:
    notes = generate_notes(10, seed=2, locales=["en_US"])
    assert not any("Pasient" in n.text for n in notes)


def test_when_locale_unknown_then_config_error() -> None:
    with pytest.raises(ConfigError, match="synth_locales"):
        generate_notes(1, seed=1, locales=["xx_XX"])
