"""Split raw text into the words a word-level corpus would have, with character offsets.

A model trained on CoNLL-style tokens labelled each *corpus word* on its first subword. At inference the
text must be cut into the same units, or "U.S." (one corpus word) becomes four tokenizer words, three of
them scored from subwords that never carried a label. The rules follow the Penn Treebank / CoNLL-2003
conventions: whitespace separates words; punctuation and clitics attached to a word are split off
("Germany's" -> "Germany" "'s", "(Reuters)." -> "(" "Reuters" ")" "."); what is inside a word stays
("Germany-based", "1996-08-28", "1,000", "O'Brien", "S&P", "U.S.", "HK$", "St."); runs of one
punctuation character stay together ("--", "...").

No library keeps offsets *and* these conventions without a sentence splitter or a model download
(NLTK's Treebank tokenizer expects one sentence per call; spaCy needs a language pipeline), so this is
a small table of patterns, checked against the CoNLL-2003 token list in the tests.
"""

from __future__ import annotations

from typing import Literal, get_args

import regex

# What a *word* (the unit that carries one label) is when raw text reaches a model: ``conll`` cuts
# corpus-style words with :func:`split_words` (models trained on word-level data), ``tokenizer`` takes
# the tokenizer's own pre-tokenizer words (models trained on character spans).
WordSplit = Literal["conll", "tokenizer"]
WORD_SPLITS: tuple[str, ...] = get_args(WordSplit)

_ABBREVIATIONS = (
    "Mr|Mrs|Ms|Dr|St|Jr|Sr|Inc|Corp|Co|Ltd|Bros|vs|Mt|Ft|Gen|Gov|Sen|Rep|Lt|Col|Sgt|Capt|Cmdr|Adm|Prof|Rev"
    "|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec|No|Nos|approx|etc|dept|Dept|Ave|Blvd|Rd"
    "|Calif|Fla|Mass|Penn|Ariz|Wash|Mich|Ill|Conn|Tenn|Okla|Wis|Minn"
)
_CLITIC_TAIL = r"(?:s|S|re|RE|ve|VE|ll|LL|m|M|d|D)(?![\p{L}\p{N}])"
_CLITIC = rf"['’]{_CLITIC_TAIL}"
_ALNUM = r"[\p{L}\p{N}\p{M}]"

_WORD = regex.compile(
    rf"""
      {_CLITIC}                                         # 's 're 've ...: their own word
    | (?:\p{{L}}\.){{2,}}(?:-{_ALNUM}+)*                # U.S.  U.N.  a.m.  F.C.  U.S.-led
    | (?<![\p{{L}}\p{{N}}])(?:{_ABBREVIATIONS})\.       # St.  Corp.  vs.
    | (?<![\p{{L}}\p{{N}}])\p{{Lu}}\.(?=\s|$)           # the initial of "M. Johnson"
    | \p{{Lu}}{{1,3}}\$                                 # C$  US$  HK$
    | (?<![^\n])\p{{N}}{{1,3}}\.(?=\s)                   # "1." numbering a line (a list, a ranking)
    | [+-]?\.?{_ALNUM}+                                # a word, a number, +44, .500, then its inner parts:
      (?:(?:[-&/.]|(?<=\p{{N}})[,:](?=\p{{N}})){_ALNUM}+  # Germany-based 1996-08-28 1,000 S&P 1/2
       | ['’](?!{_CLITIC_TAIL}){_ALNUM}+)*                # O'Brien, but not Germany's
      (?:(?<=\p{{N}})-(?![\p{{L}}\p{{N}}]))?                # 6- (a score cut short)
    | (?P<punct>[^\s\p{{L}}\p{{N}}\p{{M}}])(?P=punct)*  # -- ... ** and any other symbol, alone
    | \p{{M}}+                                         # a stray combining mark
    """,
    regex.VERBOSE,
)


def split_words(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each word, in order; together they cover every non-space character."""
    return [m.span() for m in _WORD.finditer(text)]
