from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from loraner.data import load_splits
from loraner.data.conll import coarse_type, read_column_file, read_fewnerd_file
from loraner.errors import ConfigError, DataError
from loraner.settings import DataConfig
from loraner.types import WordExample

EXPECTED_TAGS = [
    ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O"],
    ["O", "O", "B-LOC", "B-LOC", "O", "B-LOC"],
    ["B-PER", "O", "O", "B-ORG", "I-ORG", "O"],
]


@pytest.mark.parametrize(
    ("file", "scheme"),
    [
        ("iob1.txt", "auto"),  # detected from I- tags that open entities
        ("iob1.txt", "IOB1"),
        ("iob2.txt", "auto"),
        ("iob2.txt", "IOB2"),
        ("bioes.txt", "auto"),
        ("bioes.txt", "BIOES"),
        ("bilou.txt", "auto"),  # L-/U- spelling
    ],
)
def test_when_column_file_in_any_scheme_then_iob2(fixtures: Path, file: str, scheme: str) -> None:
    examples = read_column_file(fixtures / "schemes" / file, scheme=scheme)
    assert [ex.tags for ex in examples] == EXPECTED_TAGS
    assert examples[2].tokens[0] == "Åse"


def test_when_io_file_then_full_type_names_kept(fixtures: Path) -> None:
    examples = read_column_file(fixtures / "schemes" / "io.txt")
    assert examples[0].tags == [
        "B-person-actor",
        "I-person-actor",
        "O",
        "O",
        "B-building-airport",
        "I-building-airport",
    ]
    assert examples[1].tags == ["O", "B-organization-other", "O", "B-art-music"]


def test_when_docstart_and_blank_lines_then_sentences_split(fixtures: Path) -> None:
    examples = read_column_file(fixtures / "conll" / "train.txt")
    assert [len(ex.tokens) for ex in examples] == [6, 6, 6]
    assert all("-DOCSTART-" not in ex.tokens for ex in examples)


def test_when_conll_format_then_splits_loaded_with_or_without_txt(fixtures: Path) -> None:
    cfg = DataConfig(
        format="conll",
        path=str(fixtures / "conll"),
        splits={"train": "train.txt", "validation": "dev", "test": "test.txt"},
    )
    splits = load_splits(cfg)
    assert {name: len(examples) for name, examples in splits.items()} == {
        "train": 3,
        "validation": 1,
        "test": 1,
    }
    assert splits["validation"][0].tags == ["B-PER", "O", "O", "B-LOC"]  # type: ignore[union-attr]


def test_when_tag_column_chosen_then_that_column_read(fixtures: Path) -> None:
    cfg = DataConfig(format="conll", path=str(fixtures / "tagcol"), splits={"train": "train"}, tag_column="1")
    example = load_splits(cfg)["train"][0]
    assert isinstance(example, WordExample)
    assert example.tags == ["B-PER", "I-PER", "O"]


@pytest.mark.parametrize(
    ("file", "kwargs", "line", "fragment"),
    [
        ("bad_tag.txt", {}, 4, "X-FOO"),  # invalid prefix
        ("bad_iob2.txt", {"scheme": "IOB2"}, 3, "does not continue"),  # strict IOB2 forbids I- after O
        ("one_column.txt", {}, 3, "column"),  # a token without a tag
        ("one_column.txt", {"tag_column": 5}, 1, "column"),  # tag column out of range
    ],
)
def test_when_column_file_bad_then_error_names_file_and_line(
    fixtures: Path, file: str, kwargs: dict[str, object], line: int, fragment: str
) -> None:
    path = fixtures / "bad" / file
    with pytest.raises(DataError, match=fragment) as info:
        read_column_file(path, **kwargs)  # type: ignore[arg-type]
    assert str(info.value).startswith(f"{path}:{line}: ")


def test_when_prefixes_mixed_then_error_names_file(fixtures: Path) -> None:
    path = fixtures / "bad" / "mixed.txt"
    with pytest.raises(DataError, match="mix") as info:
        read_column_file(path)
    assert str(path) in str(info.value)


def test_when_split_file_missing_then_error_lists_tried_names(fixtures: Path) -> None:
    cfg = DataConfig(format="conll", path=str(fixtures / "conll"), splits={"train": "nope"})
    with pytest.raises(DataError, match=r"nope, nope\.txt"):
        load_splits(cfg)


def test_when_path_missing_then_config_error(fixtures: Path) -> None:
    with pytest.raises(ConfigError, match=r"data\.path"):
        load_splits(DataConfig(format="conll"))
    with pytest.raises(ConfigError, match="not a directory"):
        load_splits(DataConfig(format="conll", path=str(fixtures / "missing")))


def test_when_column_is_not_a_number_then_config_error(fixtures: Path) -> None:
    with pytest.raises(ConfigError, match="token_column"):
        load_splits(DataConfig(format="conll", path=str(fixtures / "conll"), token_column="word"))


# --- Few-NERD txt -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag_type", "expected"),
    [
        (
            "fine",
            [
                "B-person-actor",
                "I-person-actor",
                "O",
                "B-person-artist/author",
                "I-person-artist/author",
                "O",
                "B-building-airport",
                "O",
            ],
        ),
        ("coarse", ["B-person", "I-person", "O", "B-person", "I-person", "O", "B-building", "O"]),
    ],
)
def test_when_fewnerd_txt_then_fine_or_coarse_iob2(
    fixtures: Path, tag_type: str, expected: list[str]
) -> None:
    examples = read_fewnerd_file(fixtures / "fewnerd" / "train.txt", tag_type)
    assert examples[0].tags == expected


def test_when_coarse_then_adjacent_fine_types_merge(fixtures: Path) -> None:
    # Springsteen (person-artist/author) Obama (person-politician): two fine entities, one coarse.
    fine = read_fewnerd_file(fixtures / "fewnerd" / "train.txt", "fine")[2]
    coarse = read_fewnerd_file(fixtures / "fewnerd" / "train.txt", "coarse")[2]
    assert fine.tags[:2] == ["B-person-artist/author", "B-person-politician"]
    assert coarse.tags[:2] == ["B-person", "I-person"]


def test_when_fewnerd_txt_format_then_splits_loaded(fixtures: Path) -> None:
    cfg = DataConfig(
        format="fewnerd-txt",
        path=str(fixtures / "fewnerd"),
        splits={"train": "train", "validation": "dev", "test": "test"},
        tag_type="coarse",
    )
    splits = load_splits(cfg)
    assert [len(v) for v in splits.values()] == [3, 1, 1]
    assert splits["validation"][0].tags == ["B-person", "O", "B-art"]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("label", "coarse"), [("person-actor", "person"), ("O", "O"), ("person-artist/author", "person")]
)
def test_when_fine_label_then_coarse_is_first_part(label: str, coarse: str) -> None:
    assert coarse_type(label) == coarse


# --- the real CoNLL-2003 files (skipped without ../shared) ---------------------------------------


@pytest.mark.shared
def test_when_real_conll2003_then_all_splits_load(shared_data: Callable[..., Path]) -> None:
    root = shared_data("conll2003")
    cfg = DataConfig(
        format="conll",
        path=str(root),
        splits={"train": "train.txt", "validation": "dev.txt", "test": "test.txt"},
        scheme="auto",
    )
    splits = load_splits(cfg)
    assert {k: len(v) for k, v in splits.items()} == {"train": 14041, "validation": 3250, "test": 3453}
    types = {t[2:] for ex in splits["train"] for t in ex.tags if t != "O"}  # type: ignore[union-attr]
    assert types == {"PER", "ORG", "LOC", "MISC"}


@pytest.mark.parametrize(
    ("encoding", "message"),
    [
        ("utf-16", r"x\.txt:1: not UTF-8 text .*it looks like UTF-16"),
        ("latin-1", r"x\.txt:2: not UTF-8 text \(invalid start byte at byte 5 of the line\)"),
    ],
)
def test_when_a_column_file_is_not_utf8_then_the_error_names_the_line(tmp_path, encoding, message):
    path = tmp_path / "x.txt"
    path.write_text("Kari B-PER\nTromsø B-LOC\n", encoding=encoding)
    with pytest.raises(DataError, match=message):
        read_column_file(path)


def test_a_utf8_bom_is_not_part_of_the_first_token(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_text("Kari B-PER\n", encoding="utf-8-sig")
    assert read_column_file(path)[0].tokens == ["Kari"]


def test_when_lines_have_different_column_counts_then_error_names_both_lines(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("Kari NNP B-PER\nNordmann NNP I-PER\n\nNew York NNP B-LOC\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"x\.txt:4: line has 4 columns but line 1 has 3"):
        read_column_file(path)


def test_when_a_column_file_is_empty_then_error_says_so(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("\n-DOCSTART- -X- O\n\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"empty\.txt: no sentences \(the file is empty"):
        read_column_file(path)


def test_when_schemes_are_mixed_then_error_names_the_tags_and_lines(tmp_path):
    path = tmp_path / "mixed.txt"
    path.write_text("Kari PER\nbor O\ni O\nOslo B-LOC\n", encoding="utf-8")
    with pytest.raises(
        DataError, match=r"mixed\.txt:4: tag 'B-LOC' has a B- prefix but 'PER' \(line 1\) has none"
    ):
        read_column_file(path)
