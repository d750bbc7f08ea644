"""Per-token probabilities -> words -> labels -> entities with character offsets.

Decoding is word-level because word-level training data put each word's tag on its *first* subword
and ignored the rest: decoding every subword would split words across entities. A *word* here is
what the fast tokenizer's pre-tokenizer calls a word (``word_ids()``), spanning the character
offsets of its subwords. Entity text is always sliced from the original string, never detokenized:
BERT-uncased maps "José" to "jose" and byte-level BPE splits one character into several tokens.

Known limit of IO label sets (no ``B-``): two adjacent entities of the same type merge into one,
because nothing in the labels marks where the second begins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from loraner.types import Entity

Aggregation = Literal["first", "average", "max"]
AGGREGATIONS: tuple[str, ...] = ("first", "average", "max")

# Tag prefixes of IOB1/IOB2/BIOES/BILOU label sets, normalised to B/I/E/S. A bare label is IO.
_PREFIXES = {"B": "B", "I": "I", "E": "E", "L": "E", "S": "S", "U": "S"}


@dataclass(frozen=True)
class Word:
    start: int  # character span [start, end) in the original text, whitespace trimmed
    end: int
    tokens: tuple[int, ...]  # token positions (no special tokens) belonging to the word


@dataclass(frozen=True)
class Tag:
    prefix: str  # "B", "I", "E", "S" or "O"
    type: str | None


def parse_label(label: str) -> Tag:
    """``B-PER`` -> (B, PER); ``PER`` (IO sets) -> (I, PER); ``O`` -> (O, None)."""
    if label == "O":
        return Tag("O", None)
    if len(label) > 2 and label[1] in "-_" and label[0] in _PREFIXES:
        return Tag(_PREFIXES[label[0]], label[2:])
    return Tag("I", label)


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


def spans_from_tags(tags: Sequence[Tag]) -> list[tuple[int, int, str]]:
    """``(first, last + 1, type)`` word ranges. Lenient like seqeval's default mode: an ``I-`` after
    ``O`` or after another type starts an entity rather than being dropped."""
    spans: list[tuple[int, int, str]] = []
    open_at: int | None = None
    open_type: str | None = None
    for i, tag in enumerate(tags):
        if tag.prefix == "O":
            if open_at is not None:
                spans.append((open_at, i, open_type or ""))
            open_at, open_type = None, None
            continue
        if tag.prefix in ("B", "S") or open_at is None or tag.type != open_type:
            if open_at is not None:
                spans.append((open_at, i, open_type or ""))
            open_at, open_type = i, tag.type
        if tag.prefix in ("E", "S"):
            spans.append((open_at, i + 1, open_type or ""))
            open_at, open_type = None, None
    if open_at is not None:
        spans.append((open_at, len(tags), open_type or ""))
    return spans


def decode_entities(
    text: str,
    probs: np.ndarray,
    offsets: Sequence[tuple[int, int]],
    word_ids: Sequence[int | None],
    labels: Sequence[str],
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
    o_index = labels.index("O") if "O" in labels else None
    chosen = choose_labels(dist, o_index, o_threshold)
    word_scores = dist[np.arange(len(words)), chosen]
    parsed = [parse_label(labels[int(c)]) for c in chosen]
    entities = []
    for first, stop, type_ in spans_from_tags(parsed):
        start, end = words[first].start, words[stop - 1].end
        score = float(word_scores[first:stop].mean())
        entities.append(Entity(type=type_, text=text[start:end], start=start, end=end, score=score))
    return entities
