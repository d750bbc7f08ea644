"""CoNLL-style word splitting of raw text: the units a word-level model was trained on."""

from __future__ import annotations

import random

import pytest

from loraner.data.words import split_words


def words(text: str) -> list[str]:
    return [text[a:b] for a, b in split_words(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("U.S. troops left.", ["U.S.", "troops", "left", "."]),
        ("the Germany-based firm's chief", ["the", "Germany-based", "firm", "'s", "chief"]),
        ("(Reuters) - Oslo, 1996-08-28:", ["(", "Reuters", ")", "-", "Oslo", ",", "1996-08-28", ":"]),
        ("won 6-4 7-6 for 1,000 or 3.5%", ["won", "6-4", "7-6", "for", "1,000", "or", "3.5", "%"]),
        (
            "O'Brien met Mr. Smith of S&P Corp. in St. Louis",
            ["O'Brien", "met", "Mr.", "Smith", "of", "S&P", "Corp.", "in", "St.", "Louis"],
        ),
        (
            "M. Johnson paid HK$ 20 at 9 a.m. -- wow...",
            ["M.", "Johnson", "paid", "HK$", "20", "at", "9", "a.m.", "--", "wow", "..."],
        ),
        ("1. Jan Ullrich\n2. Bjarne Riis", ["1.", "Jan", "Ullrich", "2.", "Bjarne", "Riis"]),
        ("in 1996. Then", ["in", "1996", ".", "Then"]),
        ("don't tell José Müller's", ["don't", "tell", "José", "Müller", "'s"]),
        ("Tel +44 171 542", ["Tel", "+44", "171", "542"]),
        ("東京タワー 🙂 café", ["東京タワー", "🙂", "café"]),
        ('"Hi," she said', ['"', "Hi", ",", '"', "she", "said"]),
    ],
)
def test_split_follows_conll_conventions(text, expected):
    assert words(text) == expected


# Tokens as CoNLL-2003 writes them (typed from its conventions, not copied from the corpus): each must
# come back as one word when it stands alone between spaces, as in the corpus's own text.
CORPUS_TOKENS = [
    "U.S.",
    "U.N.",
    "F.C.",
    "a.m.",
    "'s",
    "n't",
    "'re",
    "1996-08-28",
    "6-4",
    "1/2",
    "1,000",
    ".500",
    "+44",
    "6-",
    "vs.",
    "Inc.",
    "Corp.",
    "St.",
    "Calif.",
    "O'Brien",
    "S&P",
    "C$",
    "US$",
    "--",
    "...",
    "---",
    "10th",
    "1980s",
    "26-year-old",
    "U.S.-led",
    "one-day",
    "Inzamam-ul-Haq",
    "9373-1800",
    "reuters.com",
]


@pytest.mark.parametrize("token", CORPUS_TOKENS)
def test_corpus_tokens_stay_whole_between_spaces(token):
    assert words(f"a {token} b") == ["a", token, "b"]


def test_words_cover_every_non_space_character_once_in_order():
    rng = random.Random(7)
    alphabet = "aZé1 .,'-&/$+\n\t()\"ø東🙂\u0301_"
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        spans = split_words(text)
        covered = [i for a, b in spans for i in range(a, b)]
        assert covered == sorted(set(covered)), text
        assert all(a < b for a, b in spans)
        assert {i for i, ch in enumerate(text) if not ch.isspace()} <= set(covered), text
        assert not any(ch.isspace() for a, b in spans for ch in text[a:b]), text
