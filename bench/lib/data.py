"""The texts: Few-NERD-like sentences (from CoNLL-2003 when ../shared has it, else generated) and long
clinical-style notes (the project's synthetic notes, concatenated to 400-3,000 tokens)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loraner.settings import shared_dir
from loraner.types import WordExample

# Few-NERD's sentences are mostly 20-60 tokens with short and long tails; these shares draw that shape.
BANDS = ((20, 60, 0.8), (10, 19, 0.1), (61, 128, 0.1))


@dataclass(frozen=True)
class TextSet:
    texts: list[str]
    tokens: list[int]  # model input tokens per text (special tokens included, no truncation)
    source: str

    @property
    def total_tokens(self) -> int:
        return sum(self.tokens)

    def describe(self) -> dict[str, Any]:
        ordered = sorted(self.tokens)
        n = len(ordered)
        return {
            "source": self.source,
            "count": n,
            "tokens_total": self.total_tokens,
            "tokens_mean": round(self.total_tokens / n, 1) if n else 0,
            "tokens_p10_p50_p90": [ordered[int(q * (n - 1))] for q in (0.1, 0.5, 0.9)] if n else [],
            "tokens_min_max": [ordered[0], ordered[-1]] if n else [],
        }


def conll_path(split: str) -> Path:
    return shared_dir() / "data" / "conll2003" / f"{split}.txt"


def read_conll_examples(split: str) -> list[WordExample] | None:
    """CoNLL-2003 word examples of ``split`` (train/dev/test) through loraner's reader; None if absent."""
    path = conll_path(split)
    if not path.exists():
        return None
    from loraner.data.conll import read_column_file

    return read_column_file(path, scheme="IOB2")


def token_counts(tokenizer: Any, texts: Sequence[str]) -> list[int]:
    if not texts:
        return []
    return [len(ids) for ids in tokenizer(list(texts), verbose=False)["input_ids"]]


def select_by_bands(counts: Sequence[int], n: int, seed: int) -> list[int]:
    """Indices of ``n`` texts drawn so that their token lengths follow :data:`BANDS`."""
    rng = random.Random(seed)
    chosen: list[int] = []
    for low, high, share in BANDS:
        pool = [i for i, c in enumerate(counts) if low <= c <= high]
        rng.shuffle(pool)
        chosen += pool[: round(n * share)]
    if len(chosen) < n:  # a band ran short: fill from whatever is left, still in [10, 128]
        taken = set(chosen)
        rest = [i for i, c in enumerate(counts) if 10 <= c <= 128 and i not in taken]
        rng.shuffle(rest)
        chosen += rest[: n - len(chosen)]
    rng.shuffle(chosen)
    return chosen[:n]


def sentence_set(tokenizer: Any, n: int, split: str = "test", seed: int = 0) -> TextSet:
    examples = read_conll_examples(split)
    if examples:
        texts = [" ".join(ex.tokens) for ex in examples]
        source = f"conll2003 {split} ({conll_path(split)})"
    else:
        texts = generated_sentences(max(4 * n, 200), seed)
        source = "generated (no ../shared/data/conll2003)"
    counts = token_counts(tokenizer, texts)
    picked = select_by_bands(counts, n, seed)
    return TextSet([texts[i] for i in picked], [counts[i] for i in picked], source)


def sentence_examples(n: int, split: str, tokenizer: Any, seed: int = 0) -> tuple[list[WordExample], str]:
    """Word examples for training, with the same length profile as the inference sentence set."""
    examples = read_conll_examples(split)
    if not examples:
        texts = generated_sentences(max(4 * n, 200), seed)
        examples = [
            WordExample(tokens=t.split(), tags=["O"] * len(t.split()), id=str(i)) for i, t in enumerate(texts)
        ]
        source = "generated (no ../shared/data/conll2003)"
    else:
        source = f"conll2003 {split}"
    counts = token_counts(tokenizer, [" ".join(ex.tokens) for ex in examples])
    return [examples[i] for i in select_by_bands(counts, n, seed)], source


NAMES = ["Anna Berg", "Ola Nordmann", "Maria Garcia", "John Smith", "Chen Wei", "Fatima Khan", "Lars Holm"]
PLACES = ["Oslo", "Bergen", "São Paulo", "Frankfurt", "Tromsø", "Chicago", "Lyon", "Nairobi"]
ORGS = ["the European Central Bank", "Haukeland University Hospital", "Real Madrid", "Microsoft", "UNICEF"]
CLAUSES = [
    "{p} met representatives of {o} in {l} on Tuesday",
    "according to {p}, the agreement with {o} was signed in {l} last year",
    "{o} announced that {p} would lead its new office in {l}",
    "after the match in {l}, {p} said the team from {o} had played well",
    "the report, published by {o} in {l}, was written by {p} and two colleagues",
]


def generated_sentences(n: int, seed: int) -> list[str]:
    """Newswire-like sentences of one to four clauses (10-120 tokens) when CoNLL is not available."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts = [
            rng.choice(CLAUSES).format(p=rng.choice(NAMES), o=rng.choice(ORGS), l=rng.choice(PLACES))
            for _ in range(rng.choice((1, 1, 2, 2, 2, 3, 4)))
        ]
        sentence = ", and ".join(parts)
        out.append(sentence[0].upper() + sentence[1:] + ".")
    return out


def long_notes(tokenizer: Any, n: int, token_range: tuple[int, int], seed: int = 0) -> TextSet:
    """``n`` notes whose lengths spread evenly over ``token_range``: synthetic clinical notes joined
    (a long stay's record) until the target length is reached, then cut at a line end."""
    from loraner.data.synth import generate_notes

    pool = [note.text for note in generate_notes(max(40, 8 * n), seed=f"bench:{seed}")]
    low, high = token_range
    targets = [low + (high - low) * i // max(1, n - 1) for i in range(n)]
    rng = random.Random(seed)
    texts = []
    for goal in targets:
        parts: list[str] = []
        while not parts or len(tokenizer("\n\n".join(parts), verbose=False)["input_ids"]) < goal:
            parts.append(rng.choice(pool))
        texts.append(_cut_to(tokenizer, "\n\n".join(parts), goal))
    return TextSet(texts, token_counts(tokenizer, texts), "loraner synth notes, concatenated")


def _cut_to(tokenizer: Any, text: str, goal: int) -> str:
    """The longest prefix ending at a line break whose token count is at most ``goal`` (approximately)."""
    enc = tokenizer(text, return_offsets_mapping=True, verbose=False)
    offsets = [o for o in enc["offset_mapping"] if o[1] > o[0]]
    if len(offsets) <= goal:
        return text
    cut = offsets[goal - 3][1]
    line_end = text.rfind("\n", 0, cut)
    return text[: line_end if line_end > cut // 2 else cut].rstrip()
