"""Subword alignment and long-sequence windows.

Training encodes every example as subword ids (no special tokens) with one training label per subword:
a word-level example labels the first subword of each word, a character-span example labels every
subword by the span it overlaps. Documents longer than the model's ``max_length`` are cut into
overlapping windows; each token is *owned* by exactly one window (the overlap is split at its middle),
which is how the inference engine (:mod:`loraner.inference`) merges windows back too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from loraner.errors import DataError
from loraner.types import Example, Span, SpanExample, WordExample

IGNORE = -100


@dataclass
class EncodedDoc:
    input_ids: list[int]
    token_labels: list[int]  # training label per subword, IGNORE where not trained


@dataclass(frozen=True)
class Window:
    """One model-sized window of one document, for training and prediction alike."""

    doc: int  # the document's index in the list the windows were cut from
    start: int  # token slice [start, end) of the document
    end: int
    own_start: int  # tokens [own_start, own_end) are trained and scored from this window
    own_end: int
    ids: tuple[int, ...]  # what the model reads: the slice between the special tokens


class TokenIds(Protocol):
    """A document as subword ids without special tokens (training's and the predictor's documents)."""

    @property
    def input_ids(self) -> Sequence[int]: ...


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
    if not 0 <= stride <= body // 2:  # settings.window_problem keeps callers inside this
        raise ValueError(f"stride {stride} must be in [0, {body // 2}] for windows of {body} tokens")
    if n_tokens <= body:
        return [(0, n_tokens, 0, n_tokens)]
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
    docs: Sequence[TokenIds], max_length: int, stride: int, specials: SpecialTokens
) -> list[Window]:
    """The windows of ``docs``, ``max_length`` tokens at most with the special tokens, consecutive ones
    sharing ``stride`` tokens. A document without tokens gets one window of special tokens alone."""
    body = max_length - specials.count
    return [
        Window(
            d, start, end, own_start, own_end, (*specials.prefix, *doc.input_ids[start:end], *specials.suffix)
        )
        for d, doc in enumerate(docs)
        for start, end, own_start, own_end in window_bounds(len(doc.input_ids), body, stride)
    ]


def window_features(doc: EncodedDoc, window: Window, specials: SpecialTokens) -> dict[str, list[int]]:
    """Training inputs for one window: its ids, and its labels with ``IGNORE`` on the special tokens."""
    ids = list(window.ids)
    labels = (
        [IGNORE] * len(specials.prefix)
        + doc.token_labels[window.start : window.end]
        + [IGNORE] * len(specials.suffix)
    )
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}


# --- encoding ------------------------------------------------------------------------------------


def subword_tags(
    word_ids: Sequence[int | None], word_tags: Sequence[str], label_all_subwords: bool = False
) -> list[str | None]:
    """Per token, the tag it is trained (and scored) on: its word's tag on the word's first subword;
    ``None`` on later subwords (or, with ``label_all_subwords``, the tag turned inside) and on tokens
    that belong to no word."""
    tags: list[str | None] = []
    previous = None
    for word in word_ids:
        if word is None:
            tags.append(None)
        elif word != previous:
            tags.append(word_tags[word])
        else:
            tags.append(_inside(word_tags[word]) if label_all_subwords else None)
        previous = word
    return tags


def encode_word_example(
    ex: WordExample, tokenizer: Any, label2id: dict[str, int], label_all_subwords: bool = False
) -> EncodedDoc:
    """First subword of each word carries the word's tag; the rest are ignored (or ``I-`` if labelled)."""
    if not ex.tokens:
        return EncodedDoc([], [])
    enc = tokenizer(ex.tokens, is_split_into_words=True, add_special_tokens=False, verbose=False)
    tags = subword_tags(enc.word_ids(), ex.tags, label_all_subwords)
    return EncodedDoc(list(enc["input_ids"]), _label_ids(tags, label2id, ex.id))


def encode_span_example(ex: SpanExample, tokenizer: Any, label2id: dict[str, int]) -> EncodedDoc:
    """Every subword is labelled: the first one overlapping a span gets ``B-``, the following ones ``I-``."""
    enc = tokenizer(ex.text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    tags = char_spans_to_token_tags([tuple(o) for o in enc["offset_mapping"]], ex.spans)
    return EncodedDoc(list(enc["input_ids"]), _label_ids(tags, label2id, ex.id))


def gold_token_tags(
    offsets: Sequence[tuple[int, int]],
    word_ids: Sequence[int | None],
    spans: Sequence[Span],
    word_level: bool,
) -> list[str | None]:
    """The tags a text's tokens would be trained on, from its gold character spans, for any
    tokenization of the text (the inference engine's): per subword for span-trained models, on the first
    subword of each word for word-trained ones. ``None`` where a token is not scored."""
    if not word_level:
        return list(char_spans_to_token_tags(offsets, spans))
    extents: dict[int, tuple[int, int]] = {}
    for (start, end), word in zip(offsets, word_ids, strict=True):
        if word is not None and end > start:
            low, high = extents.get(word, (start, end))
            extents[word] = (min(low, start), max(high, end))
    n_words = max((w for w in word_ids if w is not None), default=-1) + 1
    word_tags = char_spans_to_token_tags([extents.get(w, (0, 0)) for w in range(n_words)], spans)
    return subword_tags(word_ids, word_tags)


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


def _label_ids(tags: Sequence[str | None], label2id: dict[str, int], source: str) -> list[int]:
    return [IGNORE if tag is None else _label_id(tag, label2id, source) for tag in tags]


def _label_id(tag: str, label2id: dict[str, int], source: str) -> int:
    try:
        return label2id[tag]
    except KeyError:
        known = ", ".join(sorted(label2id))
        raise DataError(
            f"label {tag!r} is not in the model's labels ({known})", source=source or None
        ) from None
