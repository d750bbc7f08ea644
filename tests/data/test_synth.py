from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from loraner.data import load_splits
from loraner.data.jsonl import read_span_file
from loraner.data.synth import (
    LABELS,
    _noisy,
    format_date,
    generate_notes,
    synth_splits,
    write_synth,
)
from loraner.errors import ConfigError
from loraner.fnr import valid_fnr
from loraner.settings import DataConfig
from loraner.types import Span, SpanExample

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


def test_when_eleven_digit_ids_then_most_checksums_valid(notes: list[SpanExample]) -> None:
    ids = [n.text[s.start : s.end] for n in notes for s in n.spans if s.label == "ID"]
    national = [i for i in ids if re.fullmatch(r"\d{6} ?\d{5}", i)]
    assert len(national) > 20
    # About one in five is an arbitrary 11-digit number (records hold those too): a model must not
    # rely on the check digits; the rest are real fødselsnummer.
    valid = sum(valid_fnr(i) for i in national) / len(national)
    assert 0.6 < valid < 0.97
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


def _free_text(note: SpanExample) -> str:
    """The note with every labelled character blanked: what must not be PHI."""
    chars = list(note.text)
    for span in note.spans:
        chars[span.start : span.end] = " " * (span.end - span.start)
    return "".join(chars)


def _pieces(notes: list[SpanExample], label: str) -> list[str]:
    return [n.text[s.start : s.end] for n in notes for s in n.spans if s.label == label]


def test_when_generated_then_pronouns_titles_and_eponyms_are_not_phi(notes: list[SpanExample]) -> None:
    free = "\n".join(_free_text(n) for n in notes)
    for word in ("Hun", "Han", "hun", "han", "She", "He", "Pasienten"):
        assert re.search(rf"\b{word}\b", free), word
    titled = [
        n.text[s.start - 4 : s.start]
        for n in notes
        for s in n.spans
        if n.text[s.start - 4 : s.start] == "Fru "
    ]
    assert titled  # "Fru [Nordmann]": the title stays outside the span
    assert re.search(r"(Parkinsons|Alzheimers|Crohns|Bekhterevs|Parkinson's|Crohn's) ", free)
    labelled = " ".join(_pieces(notes, "PATIENT"))
    assert not re.search(r"\b(Hun|Han|She|He|Fru|Mr\.|Pasienten)\b", labelled)


def test_when_generated_then_names_in_many_forms_and_for_several_people(notes: list[SpanExample]) -> None:
    names = _pieces(notes, "PATIENT")
    single = [n for n in names if " " not in n and "," not in n]
    assert len(single) > 100  # a given name or a surname alone
    assert not any("," in n for n in names)
    # "Family, Given": two spans with the comma between them outside both
    assert any(
        re.fullmatch(r", ", n.text[a.end : b.start])
        for n in notes
        for a, b in zip(n.spans, n.spans[1:], strict=False)
        if a.label == b.label == "PATIENT"
    )
    assert any(re.fullmatch(r"[A-ZÆØÅ]\. \S+", n) for n in names)  # "K. Nordmann"
    assert any(n.isupper() for n in names) and any(n.islower() for n in names)
    # relatives and staff too: most notes name more than one person
    people = [len({n.text[s.start : s.end] for s in n.spans if s.label == "PATIENT"}) for n in notes]
    assert sum(count >= 3 for count in people) > len(notes) // 2


def test_when_generated_then_the_given_name_stands_where_a_pronoun_could(notes: list[SpanExample]) -> None:
    # sentences written with a pronoun ("Ved innkomst hadde hun ...", "informert henne om"), filled now
    # and then with the patient's given name instead: both forms appear, and every name is labelled
    frames = (
        r"(\S+) er \d+ år og bor i",
        r"Ved innkomst hadde (\S+) tegn",
        r"informert (\S+) om",
        r"Siden [^.]* har (\S+) hatt",
        r"On admission (\S+) had",
    )
    pronouns = {"han", "hun", "ham", "henne", "he", "she", "him", "her"}
    filled = [(n, m) for n in notes for frame in frames for m in re.finditer(frame, n.text)]
    named = [(n, m) for n, m in filled if m.group(1).lower() not in pronouns]
    assert len(named) >= 5 and len(filled) - len(named) >= 10
    for n, m in named:
        assert Span(m.start(1), m.end(1), "PATIENT") in n.spans, m.group(0)


def test_when_generated_then_given_and_family_names_have_mixed_origins(notes: list[SpanExample]) -> None:
    from loraner.data.synth_templates import FARM_NAME_HEADS, FARM_NAME_TAILS

    surnames = {name.split()[-1] for name in _pieces(notes, "PATIENT") if name.count(" ") == 1}
    farm = {
        n
        for n in surnames
        if any(n.startswith(h) and n[len(h) :] in FARM_NAME_TAILS for h in FARM_NAME_HEADS)
    }
    assert len(farm) > 40  # farm-style surnames built from parts, not a short fixed list
    assert len(surnames) > 400
    # letters Faker's Norwegian and English names never use: names with roots elsewhere
    assert re.search(r"[ąćęłńśźżėųūšžăâîșțčćđřůőűãõ]", " ".join(_pieces(notes, "PATIENT")))


def test_farm_style_surnames_never_spell_a_name_of_the_nor_deid_holdout_notes(
    shared_data: Callable[..., Path],
) -> None:
    # The holdout notes are the measurement of the generator, never its source.
    import warnings

    from loraner.data.nordeid import read_nor_deid_file
    from loraner.data.synth_templates import FARM_NAME_HEADS, FARM_NAME_TAILS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the file's own overlapping spans, reported elsewhere
        notes = list(read_nor_deid_file(shared_data("nor-deid-synth", "holdout.json"), "notes"))
    words = {
        word.lower()
        for note in notes
        for span in note.spans
        if span.label == "PATIENT"
        for word in re.split(r"[\s,]+", note.text[span.start : span.end])
    }
    assert len(words) > 100
    assert not {(h + t).lower() for h in FARM_NAME_HEADS for t in FARM_NAME_TAILS} & words


def test_when_generated_then_places_include_units_departments_and_addresses(notes: list[SpanExample]) -> None:
    places = _pieces(notes, "LOC")
    assert any(re.search(r"(sykehus|sjukehus|legevakt|DPS|sykehjem|legekontor)", p) for p in places)
    assert any(re.search(r"avdeling", p, re.IGNORECASE) for p in places)
    assert any(re.search(r"avdeling.*, ", p, re.IGNORECASE) for p in places)  # department, hospital
    assert any(re.search(r"\d+.*, \d{4} ", p) for p in places)  # street, postcode and town
    free = "\n".join(_free_text(n) for n in notes)
    assert re.search(r"\b(sengeposten|akuttmottaket|legevakten|the ward|the clinic)\b", free)


def test_when_generated_then_layouts_vary(notes: list[SpanExample]) -> None:
    headed = [
        n for n in notes if re.search(r"^(Navn|Pasient|Name|Patient|NAVN|NAME|Pas\.|Pt): ", n.text, re.M)
    ]
    bullets = [n for n in notes if re.search(r"^(- |\* |• )", n.text, re.M)]
    prose = [n for n in notes if n not in headed and n not in bullets]
    assert len(headed) > 30 and len(bullets) > 30 and len(prose) > 30
    assert any(n.text.startswith(("Til", "To:", "Dear")) for n in notes)  # letters


def test_when_generated_then_ages_are_numbers_and_dates_take_many_forms(notes: list[SpanExample]) -> None:
    assert all(a.isdigit() for a in _pieces(notes, "AGE"))
    dates = set(_pieces(notes, "DATE"))
    assert any(re.fullmatch(r"\d{2}\. [a-z]+ \d{4}", d) for d in dates)  # 04. mars 2019
    assert any(re.fullmatch(r"\d{1,2}/\d{1,2}-\d{2}", d) for d in dates)  # 4/3-19
    assert any(re.fullmatch(r"[a-z]+ \d{4}", d) for d in dates)  # mars 2019
    assert any(re.fullmatch(r"(19|20)\d{2}", d) for d in dates)  # a year alone
    phones = set(_pieces(notes, "PHONE"))
    assert any(p.startswith("0047") for p in phones) and any(p.startswith("+47") for p in phones)


def test_when_noise_added_then_length_and_spans_kept() -> None:
    import random

    text = "Pasienten Kari Nordmann bor i Bergen og har vondt i ryggen. " * 6
    spans = [Span(10, 23, "PATIENT"), Span(30, 36, "LOC")]
    for seed in range(40):
        noisy = _noisy(text, spans, random.Random(seed))
        assert len(noisy) == len(text)
        assert noisy[10:23].lower() == "kari nordmann" and "\n" not in noisy[10:36]
    outputs = {_noisy(text, spans, random.Random(seed)) for seed in range(40)}
    assert len(outputs) > 5 and any("\n" in o for o in outputs)
