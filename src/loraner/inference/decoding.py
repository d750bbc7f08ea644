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
    words: list[Word] = []
    run: list[int] = []
    for i, word in enumerate(word_ids):
        if run and (word is None or word != word_ids[run[0]]):
            _append_word(words, text, offsets, run)
            run = []
        if word is not None:
            run.append(i)
    if run:
        _append_word(words, text, offsets, run)
    return words


def _append_word(words: list[Word], text: str, offsets: Sequence[tuple[int, int]], tokens: list[int]) -> None:
    spans = [offsets[t] for t in tokens if offsets[t][1] > offsets[t][0]]
    if not spans:
        return
    start, end = min(s for s, _ in spans), max(e for _, e in spans)
    start, end = _trim(text, start, end)
    if start < end:
        words.append(Word(start, end, tuple(tokens)))


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


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
    words = group_words(text, offsets, word_ids)
    if not words:
        return []
    dist = word_distributions(probs, words, aggregation)
    o_index = next((i for i, tag in enumerate(tags) if tag.prefix == "O"), None)
    chosen = choose_labels(dist, o_index, o_threshold)
    word_scores = dist[np.arange(len(words)), chosen]
    entities = []
    for span_first, span_stop, type_ in spans_from_tags([tags[int(c)] for c in chosen]):
        for first, stop in _split_at_line_breaks(text, words, span_first, span_stop):
            start, end = words[first].start, words[stop - 1].end
            score = float(word_scores[first:stop].mean())
            entities.append(Entity(type=type_, text=text[start:end], start=start, end=end, score=score))
    return entities


def _split_at_line_breaks(text: str, words: Sequence[Word], first: int, stop: int) -> list[tuple[int, int]]:
    """Word ranges of the words ``[first, stop)``, cut wherever a line break separates two words."""
    ranges = []
    for i in range(first + 1, stop):
        if "\n" in text[words[i - 1].end : words[i].start]:
            ranges.append((first, i))
            first = i
    ranges.append((first, stop))
    return ranges
