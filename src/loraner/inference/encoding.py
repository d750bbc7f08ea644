"""Raw text -> subword ids with character offsets -> length-sorted padded batches of windows.

Windows are training's (:class:`loraner.data.alignment.Window`, cut by ``windows_for``), so every token
is scored by exactly one window (the one where it has context on both sides) and a long document is
merged back without duplicates or entities cut at a window edge.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from loraner.data.alignment import Window
from loraner.data.words import split_words


@dataclass(frozen=True)
class TokenizedText:
    input_ids: list[int]
    offsets: list[tuple[int, int]]  # character offsets into the original text, per token
    word_ids: list[int | None]


def tokenize_texts(
    tokenizer: Any, texts: Sequence[str], word_split: str = "tokenizer"
) -> list[TokenizedText]:
    """Tokenize raw strings without special tokens or truncation (windows handle length).

    ``word_split`` says what a *word* is, i.e. which subwords share a label: ``tokenizer`` takes the
    tokenizer's pre-tokenizer words; ``conll`` first cuts the text into corpus-style words
    (:func:`loraner.data.words.split_words`) and tokenizes them exactly as word-level training did
    (``is_split_into_words``), so "U.S." is one word with one label, as it was in training.
    """
    if not texts:
        return []
    if word_split == "conll":
        return _tokenize_words(tokenizer, texts)
    # verbose=False: the "longer than model_max_length" warning does not apply, we window instead.
    enc = tokenizer(
        list(texts),
        add_special_tokens=False,
        return_offsets_mapping=True,
        return_attention_mask=False,
        verbose=False,
    )
    return [
        TokenizedText(list(enc["input_ids"][i]), _pairs(enc["offset_mapping"][i]), list(enc.word_ids(i)))
        for i in range(len(texts))
    ]


def _pairs(offsets: Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    """Offsets as a list of ``(start, end)`` tuples of Python ints, converted in one go."""
    if not len(offsets):
        return []
    pairs = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    return list(zip(pairs[:, 0].tolist(), pairs[:, 1].tolist(), strict=True))


def _tokenize_words(tokenizer: Any, texts: Sequence[str]) -> list[TokenizedText]:
    """Tokens of pre-split words; offsets come back relative to each word and are shifted to the text."""
    spans = [split_words(text) for text in texts]
    enc = tokenizer(
        [[text[a:b] for a, b in doc] for text, doc in zip(texts, spans, strict=True)],
        is_split_into_words=True,
        add_special_tokens=False,
        return_offsets_mapping=True,
        return_attention_mask=False,
        verbose=False,
    )
    out = []
    for i, doc in enumerate(spans):
        word_ids = list(enc.word_ids(i))
        out.append(
            TokenizedText(
                list(enc["input_ids"][i]), _shifted(enc["offset_mapping"][i], word_ids, doc), word_ids
            )
        )
    return out


def _shifted(
    offsets: Sequence[Sequence[int]], word_ids: Sequence[int | None], words: Sequence[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Offsets relative to each word, moved to the text (``(0, 0)`` for a token of no word)."""
    if not word_ids:
        return []
    ids = np.array([-1 if w is None else w for w in word_ids], dtype=np.int64)
    pairs = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    word_starts = np.array([start for start, _ in words] or [0], dtype=np.int64)
    shift = np.where(ids >= 0, word_starts[np.maximum(ids, 0)], 0)
    pairs = np.where((ids >= 0)[:, None], pairs + shift[:, None], 0)
    return list(zip(pairs[:, 0].tolist(), pairs[:, 1].tolist(), strict=True))


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
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)
