"""Per-token probabilities -> words -> labels -> entities with character offsets.

Decoding is word-level because word-level training data put each word's tag on its *first* subword
and ignored the rest: decoding every subword would split words across entities. A *word* here is
what the fast tokenizer's pre-tokenizer calls a word (``word_ids()``), spanning the character
offsets of its subwords. Entity text is always sliced from the original string, never detokenized:
BERT-uncased maps "José" to "jose" and byte-level BPE splits one character into several tokens.

An entity never spans a line break: a line's first word starts a new entity even where the model
continued the previous line's (no labelling convention here puts a line break inside an entity, and
BERT-style tokenizers drop line breaks, so a model cannot see where a header line's value ends).

Known limit of IO label sets (no ``B-``): two adjacent entities of the same type merge into one,
because nothing in the labels marks where the second begins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from loraner.data.schemes import Tag, parse_tag, spans_from_tags
from loraner.errors import DataError, ModelError
from loraner.types import Entity

# How a word's label distribution comes from its subwords' (see word_distributions).
Aggregation = Literal["first", "average", "max"]
AGGREGATIONS: tuple[str, ...] = get_args(Aggregation)


@dataclass(frozen=True)
class Word:
    start: int  # character span [start, end) in the original text, whitespace trimmed
    end: int
    tokens: tuple[int, ...]  # token positions (no special tokens) belonging to the word


def parse_labels(labels: Sequence[str]) -> list[Tag]:
    """A model's label list as tags (any scheme: IOB1/IOB2/BIOES/BILOU, or bare IO types)."""
    try:
        return [parse_tag(label) for label in labels]
    except DataError as exc:
        raise ModelError(f"the model's labels cannot be decoded: {exc}") from None


def group_words(text: str, offsets: Sequence[tuple[int, int]], word_ids: Sequence[int | None]) -> list[Word]:
    """Words in text order. Tokens of one word are consecutive and share a word id.

    Byte-level BPE gives several tokens the same offsets (one CJK character or emoji split into
    bytes); a word's span is the union of its tokens' spans. Words that cover only whitespace
    (RoBERTa's space and newline tokens) or nothing (zero-width tokens) are dropped: word-level
    training data never contained them, so their predictions mean nothing.
    """
    table = word_table(text, offsets, word_ids)
    return [
        Word(start, end, tuple(range(first, stop)))
        for start, end, first, stop in zip(
            table.starts.tolist(),
            table.ends.tolist(),
            table.firsts.tolist(),
            table.stops.tolist(),
            strict=True,
        )
    ]


@dataclass(frozen=True)
class WordTable:
    """The words of :func:`group_words` as arrays (the decoder's form: no Python loop per token):
    character spans ``[starts, ends)`` and token runs ``[firsts, stops)``."""

    starts: np.ndarray
    ends: np.ndarray
    firsts: np.ndarray
    stops: np.ndarray

    def __len__(self) -> int:
        return len(self.starts)


def word_table(text: str, offsets: Sequence[tuple[int, int]], word_ids: Sequence[int | None]) -> WordTable:
    """:func:`group_words`, computed on arrays."""
    n = len(word_ids)
    empty = np.zeros(0, dtype=np.int64)
    if n == 0:
        return WordTable(empty, empty, empty, empty)
    ids = np.array(word_ids, dtype=np.float64)  # None -> NaN: a special or unaligned token
    valid = ~np.isnan(ids)
    previous = np.concatenate(([np.nan], ids[:-1]))
    begins = valid & ~(ids == previous)  # NaN never equals: a word after a gap begins a run
    boundaries = np.flatnonzero(begins | ~valid)
    firsts = np.flatnonzero(begins)
    after = np.append(boundaries, n)
    stops = after[np.searchsorted(after, firsts, side="right")]
    # The union of the run's non-empty token spans (reduceat over [first, stop) pairs; a sentinel row
    # makes a stop of n a valid index).
    spans = np.asarray(offsets, dtype=np.int64).reshape(n, 2)
    nonempty = spans[:, 1] > spans[:, 0]
    big = np.iinfo(np.int64).max
    lows = np.append(np.where(nonempty, spans[:, 0], big), big)
    highs = np.append(np.where(nonempty, spans[:, 1], -1), -1)
    pairs = np.stack([firsts, stops], axis=1).ravel()
    starts = np.minimum.reduceat(lows, pairs)[::2] if len(pairs) else empty
    ends = np.maximum.reduceat(highs, pairs)[::2] if len(pairs) else empty
    keep = starts != big
    starts, ends, firsts, stops = starts[keep], ends[keep], firsts[keep], stops[keep]
    starts, ends = _trim_spaces(text, starts, ends)
    keep = starts < ends
    return WordTable(starts[keep], ends[keep], firsts[keep], stops[keep])


# Whether a code point is whitespace (str.isspace), looked up: every such code point lies below U+3001
# (the ideographic space is the last), so one more entry, False, stands for all code points above.
_LAST_SPACE = 0x3000
_IS_SPACE = np.array([chr(c).isspace() for c in range(_LAST_SPACE + 2)], dtype=bool)
_IS_SPACE[-1] = False


def _trim_spaces(text: str, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spans without leading and trailing whitespace (``str.isspace``), all at once."""
    if not len(starts):
        return starts, ends
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    space = np.append(_IS_SPACE[np.minimum(codes, _LAST_SPACE + 1)], False)  # len(text): no space
    starts, ends = starts.copy(), ends.copy()
    while True:
        lead = (starts < ends) & space[starts]
        if not lead.any():
            break
        starts[lead] += 1
    while True:
        trail = (ends > starts) & space[np.maximum(ends - 1, 0)]
        if not trail.any():
            break
        ends[trail] -= 1
    return starts, ends


def word_distributions(probs: np.ndarray, words: Sequence[Word], aggregation: str = "first") -> np.ndarray:
    """One label distribution per word from its subwords' distributions ``probs[token]``.

    ``first`` matches word-level training; ``average`` means over the subwords; ``max`` takes the
    subword whose best label is most confident.
    """
    n_labels = probs.shape[1] if probs.ndim == 2 else 0
    if aggregation == "first" and words:
        return probs[[w.tokens[0] for w in words]].astype(np.float32, copy=False)
    out = np.zeros((len(words), n_labels), dtype=np.float32)
    for i, word in enumerate(words):
        rows = probs[list(word.tokens)]
        if aggregation == "first":
            out[i] = rows[0]
        elif aggregation == "average":
            out[i] = rows.mean(axis=0)
        elif aggregation == "max":
            out[i] = rows[int(rows.max(axis=1).argmax())]
        else:
            raise ValueError(f"aggregation {aggregation!r} is not one of {', '.join(AGGREGATIONS)}")
    return out


def choose_labels(dist: np.ndarray, o_index: int | None, o_threshold: float | None = None) -> np.ndarray:
    """Label index per row: argmax, or, with ``o_threshold``, the best non-O label wherever P(O) < threshold.

    A threshold above 0.5 trades precision for recall (de-identification wants every name found).
    """
    if len(dist) == 0:
        return np.zeros(0, dtype=np.int64)
    if o_threshold is None or o_index is None:
        return dist.argmax(axis=1)
    others = dist.copy()
    others[:, o_index] = -np.inf
    best_entity = others.argmax(axis=1)
    return np.where(dist[:, o_index] < o_threshold, best_entity, o_index)


def decode_entities(
    text: str,
    probs: np.ndarray,
    offsets: Sequence[tuple[int, int]],
    word_ids: Sequence[int | None],
    tags: Sequence[Tag],
    aggregation: str = "first",
    o_threshold: float | None = None,
) -> list[Entity]:
    """Entities of one text from its per-token probabilities (``probs[token, label]``).

    The score is the mean probability of the chosen label over the entity's words, each word
    scored from the subwords its aggregation used.
    """
    table = word_table(text, offsets, word_ids)
    if not len(table):
        return []
    if aggregation == "first":
        dist = probs[table.firsts].astype(np.float32, copy=False)
    else:
        dist = word_distributions(probs, group_words(text, offsets, word_ids), aggregation)
    o_index = next((i for i, tag in enumerate(tags) if tag.prefix == "O"), None)
    chosen = choose_labels(dist, o_index, o_threshold)
    if o_index is not None and not (chosen != o_index).any():
        return []  # every word is O: no entity
    word_scores = dist[np.arange(len(table)), chosen]
    starts, ends = table.starts.tolist(), table.ends.tolist()
    entities = []
    for span_first, span_stop, type_ in spans_from_tags([tags[c] for c in chosen.tolist()]):
        for first, stop in _split_at_line_breaks(text, starts, ends, span_first, span_stop):
            start, end = starts[first], ends[stop - 1]
            # One word's score is its own (the mean of one value, without numpy's per-call cost).
            score = float(word_scores[first] if stop - first == 1 else word_scores[first:stop].mean())
            entities.append(Entity(type=type_, text=text[start:end], start=start, end=end, score=score))
    return entities


def _split_at_line_breaks(
    text: str, starts: Sequence[int], ends: Sequence[int], first: int, stop: int
) -> list[tuple[int, int]]:
    """Word ranges of the words ``[first, stop)``, cut wherever a line break separates two words."""
    ranges = []
    for i in range(first + 1, stop):
        if "\n" in text[ends[i - 1] : starts[i]]:
            ranges.append((first, i))
            first = i
    ranges.append((first, stop))
    return ranges
