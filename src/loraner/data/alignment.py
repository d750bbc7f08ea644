"""Subword alignment and long-sequence windows.

Every example becomes an :class:`EncodedDoc`: its subword ids (no special tokens), the *unit* each
subword belongs to, and the training label of each subword. A unit is what gets scored: a word for
word-level examples, a subword for character-span examples. Documents longer than the model's
``max_length`` are cut into overlapping :class:`Window` slices; each token is *owned* by exactly
one window (the overlap is split at its middle) so predictions merge back without duplicates.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from loraner.errors import DataError
from loraner.types import Example, Span, SpanExample, WordExample

IGNORE = -100


@dataclass
class EncodedDoc:
    input_ids: list[int]
    token_units: list[int]  # unit index per subword, -1 if none
    token_labels: list[int]  # training label per subword, IGNORE where not trained
    scoring: list[bool]  # the subword whose prediction is its unit's prediction
    unit_gold: list[str]  # gold IOB2 tag per unit
    unit_offsets: list[tuple[int, int]] = field(default_factory=list)  # char offsets (span examples)


@dataclass(frozen=True)
class Window:
    doc: int
    start: int  # token slice [start, end) of the doc
    end: int
    own_start: int  # tokens [own_start, own_end) are scored from this window
    own_end: int


@dataclass(frozen=True)
class SpecialTokens:
    prefix: tuple[int, ...]
    suffix: tuple[int, ...]

    @property
    def count(self) -> int:
        return len(self.prefix) + len(self.suffix)


def special_tokens(tokenizer: Any) -> SpecialTokens:
    """Special ids the tokenizer wraps a sequence in, found by diffing one encoding with and without."""
    return _special_tokens_cached(id(tokenizer), tokenizer)


@lru_cache(maxsize=32)
def _special_tokens_cached(_key: int, tokenizer: Any) -> SpecialTokens:
    bare = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a")["input_ids"]
    for i in range(len(full) - len(bare) + 1):
        if full[i : i + len(bare)] == bare:
            return SpecialTokens(tuple(full[:i]), tuple(full[i + len(bare) :]))
    return SpecialTokens((), ())


def window_bounds(n_tokens: int, body: int, stride: int) -> list[tuple[int, int, int, int]]:
    """Slices ``(start, end, own_start, own_end)`` covering ``n_tokens`` with ``stride`` shared tokens.

    Owned ranges tile ``[0, n_tokens)`` exactly once: where two windows overlap, the first owns
    the first half of the overlap, the second the rest, so every token is scored with context.
    """
    if body <= 0:
        raise ValueError("window body must be positive")
    if n_tokens <= body:
        return [(0, n_tokens, 0, n_tokens)]
    stride = min(stride, body // 2)
    step = body - stride
    starts = sorted({*range(0, n_tokens - body, step), n_tokens - body})
    bounds = []
    for i, start in enumerate(starts):
        end = start + body
        own_start = 0 if i == 0 else (bounds[-1][3])
        own_end = n_tokens if i == len(starts) - 1 else (starts[i + 1] + end) // 2
        bounds.append((start, end, own_start, own_end))
    return bounds


def windows_for(
    docs: Sequence[EncodedDoc], max_length: int, stride: int, specials: SpecialTokens
) -> list[Window]:
    body = max_length - specials.count
    return [
        Window(d, *b) for d, doc in enumerate(docs) for b in window_bounds(len(doc.input_ids), body, stride)
    ]


def window_features(doc: EncodedDoc, window: Window, specials: SpecialTokens) -> dict[str, list[int]]:
    """Model inputs for one window: specials around the slice; specials get ``IGNORE`` labels."""
    ids = list(specials.prefix) + doc.input_ids[window.start : window.end] + list(specials.suffix)
    labels = (
        [IGNORE] * len(specials.prefix)
        + doc.token_labels[window.start : window.end]
        + [IGNORE] * len(specials.suffix)
    )
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}


# --- encoding ------------------------------------------------------------------------------------


def encode_word_example(
    ex: WordExample, tokenizer: Any, label2id: dict[str, int], label_all_subwords: bool = False
) -> EncodedDoc:
    """First subword of each word carries the word's tag; the rest are ignored (or ``I-`` if labelled)."""
    if not ex.tokens:
        return EncodedDoc([], [], [], [], [])
    enc = tokenizer(ex.tokens, is_split_into_words=True, add_special_tokens=False, verbose=False)
    word_ids = enc.word_ids()
    labels, scoring, units = [], [], []
    previous = None
    for word in word_ids:
        first = word is not None and word != previous
        tag = ex.tags[word] if word is not None else "O"
        if first:
            labels.append(_label_id(tag, label2id, ex.id))
        elif word is not None and label_all_subwords:
            labels.append(_label_id(_inside(tag), label2id, ex.id))
        else:
            labels.append(IGNORE)
        scoring.append(first)
        units.append(-1 if word is None else word)
        previous = word
    return EncodedDoc(list(enc["input_ids"]), units, labels, scoring, list(ex.tags))


def encode_span_example(ex: SpanExample, tokenizer: Any, label2id: dict[str, int]) -> EncodedDoc:
    """Every subword is a unit: the first one overlapping a span gets ``B-``, the following ones ``I-``."""
    enc = tokenizer(ex.text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    offsets = [tuple(o) for o in enc["offset_mapping"]]
    tags = char_spans_to_token_tags(offsets, ex.spans)
    labels = [_label_id(t, label2id, ex.id) for t in tags]
    n = len(offsets)
    return EncodedDoc(list(enc["input_ids"]), list(range(n)), labels, [True] * n, tags, offsets)


def char_spans_to_token_tags(offsets: Sequence[tuple[int, int]], spans: Sequence[Span]) -> list[str]:
    tags = ["O"] * len(offsets)
    ordered = sorted(spans)
    j = 0
    for i, (start, end) in enumerate(offsets):
        if end <= start:
            continue
        while j < len(ordered) and ordered[j].end <= start:
            j += 1
        if j < len(ordered) and ordered[j].start < end:
            span = ordered[j]
            inside = i > 0 and tags[i - 1] != "O" and _same_span(offsets[i - 1], span)
            tags[i] = ("I-" if inside else "B-") + span.label
    return tags


def _same_span(prev: tuple[int, int], span: Span) -> bool:
    return prev[1] > span.start and prev[0] < span.end


def encode_examples(
    examples: Iterable[Example],
    tokenizer: Any,
    label2id: dict[str, int],
    label_all_subwords: bool = False,
) -> list[EncodedDoc]:
    docs = []
    for ex in examples:
        if isinstance(ex, WordExample):
            docs.append(encode_word_example(ex, tokenizer, label2id, label_all_subwords))
        else:
            docs.append(encode_span_example(ex, tokenizer, label2id))
    return docs


def _inside(tag: str) -> str:
    return "I-" + tag[2:] if tag.startswith("B-") else tag


def _label_id(tag: str, label2id: dict[str, int], source: str) -> int:
    try:
        return label2id[tag]
    except KeyError:
        known = ", ".join(sorted(label2id))
        raise DataError(
            f"label {tag!r} is not in the model's labels ({known})", source=source or None
        ) from None


# --- merging predictions back ----------------------------------------------------------------------


def merge_unit_predictions(
    docs: Sequence[EncodedDoc],
    windows: Sequence[Window],
    window_predictions: Sequence[np.ndarray],
    n_prefix: int,
) -> list[np.ndarray]:
    """Per doc, the prediction row of each unit's scoring subword, taken from the window owning it.

    ``window_predictions[k]`` is indexed by position in window ``k`` (specials included), so it may
    be label ids (1-D) or per-label scores (2-D). Units never reached (a word with no subwords) get
    ``-1`` rows, which callers treat as ``O``.
    """
    merged: list[np.ndarray] = []
    for doc in docs:
        row_shape = tuple(np.shape(window_predictions[0])[1:]) if window_predictions else ()
        shape = (len(doc.unit_gold), *row_shape)
        merged.append(np.full(shape, -1, dtype=np.float32 if len(shape) > 1 else np.int64))
    for window, pred in zip(windows, window_predictions, strict=True):
        doc = docs[window.doc]
        for t in range(window.own_start, window.own_end):
            unit = doc.token_units[t]
            if unit >= 0 and doc.scoring[t]:
                merged[window.doc][unit] = pred[n_prefix + t - window.start]
    return merged


def unit_tags(merged: np.ndarray, id2label: dict[int, str]) -> list[str]:
    return [id2label.get(int(i), "O") if i >= 0 else "O" for i in merged]
