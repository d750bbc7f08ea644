"""Raw text -> subword ids with character offsets -> length-sorted padded batches of windows.

Windows are training's (:class:`loraner.data.alignment.Window`, cut by ``windows_for``), so every token
is scored by exactly one window (the one where it has context on both sides) and a long document is
merged back without duplicates or entities cut at a window edge.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

from loraner.data.alignment import Window
from loraner.data.words import split_words
from loraner.modeldir import encode_batch


@dataclass(frozen=True)
class TokenizedText:
    input_ids: list[int]
    offsets: list[tuple[int, int]]  # character offsets into the original text, per token
    word_ids: list[int | None]


def tokenize_texts(
    tokenizer: Any, texts: Sequence[str], word_split: str = "tokenizer"
) -> list[TokenizedText]:
    """Tokenize raw strings without special tokens or truncation (windows handle length), all in one
    call of the Rust tokenizer (:func:`~loraner.modeldir.encode_batch`).

    ``word_split`` says what a *word* is, i.e. which subwords share a label: ``tokenizer`` takes the
    tokenizer's pre-tokenizer words; ``conll`` first cuts the text into corpus-style words
    (:func:`loraner.data.words.split_words`) and tokenizes them exactly as word-level training did
    (``is_split_into_words``), so "U.S." is one word with one label, as it was in training.
    """
    if not texts:
        return []
    if word_split == "conll":
        return _tokenize_words(tokenizer, texts)
    return [TokenizedText(e.ids, e.offsets, e.word_ids) for e in encode_batch(tokenizer, list(texts))]


def _tokenize_words(tokenizer: Any, texts: Sequence[str]) -> list[TokenizedText]:
    """Tokens of pre-split words; offsets come back relative to each word and are shifted to the text."""
    words = [split_words(text) for text in texts]
    encodings = encode_batch(
        tokenizer,
        [[text[a:b] for a, b in spans] for text, spans in zip(texts, words, strict=True)],
        is_split_into_words=True,
    )
    word_ids = [e.word_ids for e in encodings]
    offsets = _shifted([e.offsets for e in encodings], word_ids, words)
    return [TokenizedText(e.ids, o, w) for e, o, w in zip(encodings, offsets, word_ids, strict=True)]


def _shifted(
    offsets: Sequence[Sequence[tuple[int, int]]],
    word_ids: Sequence[Sequence[int | None]],
    words: Sequence[Sequence[tuple[int, int]]],
) -> list[list[tuple[int, int]]]:
    """Each text's token offsets, relative to their word, moved to the text (``(0, 0)`` for a token of no
    word), for all texts at once."""
    counts = [len(ids) for ids in word_ids]
    total = sum(counts)
    if not total:
        return [[] for _ in counts]
    ids = np.array([-1 if w is None else w for w in chain.from_iterable(word_ids)], dtype=np.int64)
    # Each token's word as a row of all texts' words, one text after the other.
    first_word = np.cumsum([0, *(len(spans) for spans in words[:-1])])
    rows = ids + np.repeat(first_word, counts)
    word_starts = np.fromiter((start for spans in words for start, _ in spans), dtype=np.int64)
    pairs = np.fromiter(chain.from_iterable(chain.from_iterable(offsets)), dtype=np.int64, count=2 * total)
    pairs = pairs.reshape(total, 2)
    inside = ids >= 0
    shift = np.where(inside, word_starts[np.where(inside, rows, 0)], 0)
    pairs = np.where(inside[:, None], pairs + shift[:, None], 0)
    shifted = list(zip(pairs[:, 0].tolist(), pairs[:, 1].tolist(), strict=True))
    ends = np.cumsum(counts).tolist()
    return [shifted[end - count : end] for end, count in zip(ends, counts, strict=True)]


def length_batches(
    windows: Sequence[Window], batch_size: int, max_tokens: int | None = None
) -> Iterator[list[int]]:
    """Window indices grouped into batches of similar length, so dynamic padding stays small.

    A batch holds at most ``batch_size`` windows and, with ``max_tokens``, at most that many padded
    tokens (but always one window): 512-token windows of a long note go a few at a time, which bounds
    the activation memory of one forward pass without slowing it (long windows gain nothing from batching).
    """
    order = sorted(range(len(windows)), key=lambda i: len(windows[i].ids))
    batch: list[int] = []
    for i in order:
        width = len(windows[i].ids)  # ascending order: the newest window is the widest
        if batch and (len(batch) == batch_size or (max_tokens and (len(batch) + 1) * width > max_tokens)):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded ``input_ids`` and ``attention_mask`` (int64) as wide as the longest row."""
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return ids, mask


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities over the last axis, in one new array (every text's tokens at once: megabytes)."""
    probs = logits - logits.max(axis=-1, keepdims=True)
    np.exp(probs, out=probs)
    probs /= probs.sum(axis=-1, keepdims=True)
    return probs
