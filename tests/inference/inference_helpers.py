"""Fake backends whose logits the test chooses (random tiny models cannot be asked for entities).

``TokenLabelBackend({id: "B-PER"})`` labels *token ids*; ``label_words`` builds that map from words.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

IOB2 = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
IO = ["O", "PER", "LOC"]


class TokenLabelBackend:
    """Logits that make each token id's label the argmax (others O). Records every batch it gets."""

    name = "fake"

    def __init__(
        self, labels: Sequence[str], by_id: dict[int, str], high: float = 8.0, o_logit: float | None = None
    ) -> None:
        self.labels = list(labels)
        self.by_id = {i: self.labels.index(label) for i, label in by_id.items()}
        self.high = high
        self.o_logit = high / 2 if o_logit is None else o_logit
        self.batches: list[tuple[int, int]] = []  # (rows, width) per call
        self.rows: list[list[int]] = []

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        self.batches.append(input_ids.shape)
        self.rows.extend(list(r[m.astype(bool)]) for r, m in zip(input_ids, attention_mask, strict=True))
        out = np.zeros((*input_ids.shape, len(self.labels)), dtype=np.float32)
        out[..., 0] = self.o_logit  # O wins unless the token id is labelled
        for (b, t), token in np.ndenumerate(input_ids):
            if int(token) in self.by_id:
                out[b, t, self.by_id[int(token)]] = self.high
        return out


def word_ids_of(tokenizer, word: str) -> list[int]:
    """Token ids of ``word`` as it appears after a space (what RoBERTa's prefix space gives)."""
    return list(tokenizer(word, add_special_tokens=False)["input_ids"])


def label_words(tokenizer, words: dict[str, str], rest: str | None = None) -> dict[int, str]:
    """Id -> label: each word's first subword gets its label; later subwords get ``rest`` (noise that
    first-subword decoding must ignore) when given."""
    by_id: dict[int, str] = {}
    for word, label in words.items():
        ids = word_ids_of(tokenizer, word)
        by_id[ids[0]] = label
        for other in ids[1:]:
            if rest is not None:
                by_id.setdefault(other, rest)
    return by_id
