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

Every step runs on arrays, for the tokens of all texts of a call laid end to end (:class:`TokenTable`):
no Python loop per token or per text, which on a fast runtime would cost as much as the model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from itertools import chain, pairwise
from typing import Any, Literal, get_args

import numpy as np

from loraner.data.schemes import Tag, TagCodes, entity_runs, parse_tag
from loraner.errors import DataError, ModelError
from loraner.inference.encoding import softmax
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
    return word_table(text, offsets, word_ids).words()


@dataclass(frozen=True)
class TokenTable:
    """The tokens of one or more texts laid end to end, as arrays (the decoder's input: no Python loop
    per token): each token's characters in the texts joined (``spans``) and its word (``word_ids``,
    NaN for a token of no word); text ``i`` holds characters ``[text_starts[i], text_starts[i + 1])``
    of ``joined`` and tokens ``[token_starts[i], token_starts[i + 1])``."""

    joined: str
    text_starts: np.ndarray
    token_starts: np.ndarray
    spans: np.ndarray  # (tokens, 2)
    word_ids: np.ndarray  # (tokens,) float64

    @classmethod
    def of(
        cls,
        texts: Sequence[str],
        offsets: Sequence[Sequence[tuple[int, int]]],
        word_ids: Sequence[Sequence[int | None]],
    ) -> TokenTable:
        """``offsets[i]`` and ``word_ids[i]``: the tokens of ``texts[i]``, offsets into that text."""
        text_starts = _starts(len(text) for text in texts)
        token_starts = _starts(len(ids) for ids in word_ids)
        total = int(token_starts[-1])
        pairs = np.fromiter(
            chain.from_iterable(chain.from_iterable(offsets)), dtype=np.int64, count=2 * total
        ).reshape(total, 2)
        text_of_token = np.repeat(np.arange(len(texts)), np.diff(token_starts))
        ids = np.array(list(chain.from_iterable(word_ids)), dtype=np.float64)  # None -> NaN
        return cls("".join(texts), text_starts, token_starts, pairs + text_starts[text_of_token, None], ids)

    @cached_property
    def codes(self) -> np.ndarray:
        """The joined texts' code points."""
        return np.frombuffer(self.joined.encode("utf-32-le"), dtype=np.uint32)


def _starts(lengths: Iterable[int]) -> np.ndarray:
    """Where each of consecutive pieces of these lengths starts, and (last) where the last one ends."""
    return np.concatenate(([0], np.cumsum(np.fromiter(lengths, dtype=np.int64)))).astype(np.int64)


@dataclass(frozen=True)
class WordTable:
    """The words of :func:`group_words` as arrays: character spans ``[starts, ends)`` (in the texts
    joined, for several texts), token runs ``[firsts, stops)`` and the text each word is in."""

    starts: np.ndarray
    ends: np.ndarray
    firsts: np.ndarray
    stops: np.ndarray
    texts: np.ndarray

    def __len__(self) -> int:
        return len(self.starts)

    def words(self) -> list[Word]:
        return [
            Word(start, end, tuple(range(first, stop)))
            for start, end, first, stop in zip(
                self.starts.tolist(),
                self.ends.tolist(),
                self.firsts.tolist(),
                self.stops.tolist(),
                strict=True,
            )
        ]


def word_table(text: str, offsets: Sequence[tuple[int, int]], word_ids: Sequence[int | None]) -> WordTable:
    """:func:`group_words`, computed on arrays."""
    return words_of(TokenTable.of([text], [offsets], [word_ids]))


def words_of(tokens: TokenTable) -> WordTable:
    """The words of every text in ``tokens`` (:func:`group_words`' rule), all at once."""
    ids = tokens.word_ids
    n = len(ids)
    empty = np.zeros(0, dtype=np.int64)
    if n == 0:
        return WordTable(empty, empty, empty, empty, empty)
    valid = ~np.isnan(ids)
    previous = np.concatenate(([np.nan], ids[:-1]))
    heads = tokens.token_starts[:-1]
    previous[heads[heads < n]] = np.nan  # a text's first token begins a run
    begins = valid & ~(ids == previous)  # NaN never equals: a word after a gap begins a run
    boundaries = np.flatnonzero(begins | ~valid)
    firsts = np.flatnonzero(begins)
    after = np.append(boundaries, n)
    stops = after[np.searchsorted(after, firsts, side="right")]
    # The union of the run's non-empty token spans (reduceat over [first, stop) pairs; a sentinel row
    # makes a stop of n a valid index).
    spans = tokens.spans
    nonempty = spans[:, 1] > spans[:, 0]
    big = np.iinfo(np.int64).max
    lows = np.append(np.where(nonempty, spans[:, 0], big), big)
    highs = np.append(np.where(nonempty, spans[:, 1], -1), -1)
    pairs = np.stack([firsts, stops], axis=1).ravel()
    starts = np.minimum.reduceat(lows, pairs)[::2] if len(pairs) else empty
    ends = np.maximum.reduceat(highs, pairs)[::2] if len(pairs) else empty
    keep = starts != big
    starts, ends, firsts, stops = starts[keep], ends[keep], firsts[keep], stops[keep]
    starts, ends = _trim_spaces(tokens.codes, starts, ends)
    keep = starts < ends
    firsts = firsts[keep]
    texts = np.searchsorted(tokens.token_starts, firsts, side="right") - 1
    return WordTable(starts[keep], ends[keep], firsts, stops[keep], texts)


# Whether a code point is whitespace (str.isspace), looked up: every such code point lies below U+3001
# (the ideographic space is the last), so one more entry, False, stands for all code points above.
_LAST_SPACE = 0x3000
_IS_SPACE = np.array([chr(c).isspace() for c in range(_LAST_SPACE + 2)], dtype=bool)
_IS_SPACE[-1] = False


def _trim_spaces(codes: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spans of the text of code points ``codes`` without leading and trailing whitespace
    (``str.isspace``), all at once."""
    if not len(starts):
        return starts, ends
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
    """Entities of one text from its per-token probabilities (``probs[token, label]``)."""
    return _decode([text], probs.__getitem__, [offsets], [word_ids], tags, aggregation, o_threshold)[0]


def decode_texts(
    texts: Sequence[str],
    logits: np.ndarray,
    offsets: Sequence[Sequence[tuple[int, int]]],
    word_ids: Sequence[Sequence[int | None]],
    tags: Sequence[Tag],
    aggregation: str = "first",
    o_threshold: float | None = None,
) -> list[list[Entity]]:
    """Entities of each text, decoded all at once: ``logits[token, label]`` holds the tokens of every text,
    one text after the other (``offsets[i]``, ``word_ids[i]``: the tokens of ``texts[i]``). Only the rows
    decoding reads become probabilities (with ``first``, those of each word's first token).

    The score is the mean probability of the chosen label over the entity's words, each word
    scored from the subwords its aggregation used.
    """

    def probs_of(rows: Any) -> np.ndarray:
        return softmax(logits[rows])

    return _decode(texts, probs_of, offsets, word_ids, tags, aggregation, o_threshold)


def _decode(
    texts: Sequence[str],
    probs_of: Callable[[Any], np.ndarray],
    offsets: Sequence[Sequence[tuple[int, int]]],
    word_ids: Sequence[Sequence[int | None]],
    tags: Sequence[Tag],
    aggregation: str,
    o_threshold: float | None,
) -> list[list[Entity]]:
    """The decoder: ``probs_of(rows)`` gives the label probabilities of token rows (an index array, or
    ``slice(None)`` for all of them)."""
    tokens = TokenTable.of(texts, offsets, word_ids)
    table = words_of(tokens)
    found: list[list[Entity]] = [[] for _ in texts]  # what a call without entities returns
    if not len(table):
        return found
    if aggregation == "first":
        dist = probs_of(table.firsts).astype(np.float32, copy=False)
    else:
        dist = word_distributions(probs_of(slice(None)), table.words(), aggregation)
    o_index = next((i for i, tag in enumerate(tags) if tag.prefix == "O"), None)
    chosen = choose_labels(dist, o_index, o_threshold)
    if o_index is not None and not (chosen != o_index).any():
        return found  # every word is O: no entity
    codes = _tag_codes(tuple(tags))
    firsts, stops = entity_runs(codes.prefixes[chosen], codes.types[chosen], _breaks(tokens, table))
    scores = _mean_scores(dist[np.arange(len(table)), chosen], firsts, stops)
    # Built in C loops (map), one list for all texts, then cut per text: entities come in text order.
    starts, ends = table.starts[firsts], table.ends[stops - 1]  # in the texts joined
    base = tokens.text_starts[table.texts[firsts]]
    entities = list(
        map(
            Entity,
            map(codes.names.__getitem__, codes.types[chosen[firsts]].tolist()),
            map(tokens.joined.__getitem__, map(slice, starts.tolist(), ends.tolist())),
            (starts - base).tolist(),
            (ends - base).tolist(),
            scores.tolist(),
        )
    )
    cuts = np.searchsorted(table.texts[firsts], np.arange(len(texts) + 1)).tolist()
    return [entities[a:b] for a, b in pairwise(cuts)]


@lru_cache(maxsize=64)
def _tag_codes(tags: tuple[Tag, ...]) -> TagCodes:
    return TagCodes.of(tags)


def _breaks(tokens: TokenTable, table: WordTable) -> np.ndarray:
    """The words no entity continues into: a text's first word, and a word on a new line (a line break
    between it and the word before)."""
    breaks = np.ones(len(table), dtype=bool)
    breaks[1:] = table.texts[1:] != table.texts[:-1]
    newlines = np.concatenate(([0], np.cumsum(tokens.codes == ord("\n"))))  # newlines before each character
    breaks[1:] |= newlines[table.starts[1:]] > newlines[table.ends[:-1]]
    return breaks


# Entities this long or longer take numpy's own mean (pairwise summation); shorter ones are summed in
# order, as numpy sums fewer than 8 numbers, so every score is the very float np.mean gives.
_PAIRWISE_FROM = 8


def _mean_scores(word_scores: np.ndarray, firsts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """``word_scores[first:stop].mean()`` of each entity, computed as numpy computes it."""
    counts = stops - firsts
    sums = word_scores[firsts].copy()
    short = counts < _PAIRWISE_FROM
    for k in range(1, _PAIRWISE_FROM - 1):
        more = np.flatnonzero(short & (counts > k))
        if not len(more):
            break
        sums[more] = sums[more] + word_scores[firsts[more] + k]
    means = (sums / counts.astype(np.float32)).astype(np.float32)
    for i in np.flatnonzero(~short).tolist():
        means[i] = word_scores[firsts[i] : stops[i]].mean()
    return means
