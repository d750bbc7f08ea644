"""How sure the model is of a whole text: what ``loraner rank`` orders texts by and what a Label Studio
prediction's ``score`` says.

The measure is the *sequence confidence*: the probability that every word of the text gets its right
label, taking each word's most likely label and the words as independent,
``prod_w max_l P(l | w)``, kept as its logarithm (``sum_w log max_l P(l | w)``) so long texts do not
all round to 0. Ranking by it lowest first is least-confidence sampling (Culotta & McCallum 2005;
Settles & Craven 2008), the strongest plain uncertainty measure for sequence labelling in their
comparison. It counts every word the model is unsure of, so a text with several doubtful entities comes
before a text with one, which is what an annotator's time buys when it is counted in texts; its
bias to long texts is the other side of that (``loraner rank`` reports the words it picked).

A word's distribution is the one decoding uses (its subwords aggregated as the predictor's
``aggregation`` says), so the measure describes the entities the model returns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from loraner.inference.decoding import group_words, word_distributions
from loraner.inference.predictor import TextPrediction

# Keeps log(0) finite: a probability this small is already "certainly wrong".
_FLOOR = 1e-12


@dataclass(frozen=True)
class Confidence:
    """A text's sequence confidence: ``log`` (the sum over its words of the log of the best label's
    probability), its number of ``words`` and its ``lowest`` word confidence."""

    log: float
    words: int
    lowest: float

    @property
    def value(self) -> float:
        """The probability that every word is labelled right (0 to 1; 1 for a text without words)."""
        return math.exp(self.log)


def confidence(text: str, prediction: TextPrediction, aggregation: str = "first") -> Confidence:
    """The sequence confidence of ``prediction`` (:meth:`NERPredictor.analyze_batch`) of ``text``."""
    tokens = prediction.tokens
    words = group_words(text, tokens.offsets, tokens.word_ids)
    if not words or not len(prediction.probs):
        return Confidence(0.0, 0, 1.0)
    best = word_distributions(prediction.probs, words, aggregation).max(axis=1)
    return Confidence(float(np.log(np.maximum(best, _FLOOR)).sum()), len(words), float(best.min()))


# How a text's confidence becomes the uncertainty ``loraner rank`` orders by (higher: annotate sooner).
Measure = Literal["sequence", "word-mean", "lowest-word"]
MEASURES: dict[str, str] = {
    "sequence": "least confidence of the whole text: -log P(every word right) (favours texts with more "
    "doubtful words, so longer ones)",
    "word-mean": "the same per word: -log P(every word right) / words (no length bias; Shen et al. 2017's "
    "MNLP)",
    "lowest-word": "1 - the confidence of the least sure word (one doubtful word is enough)",
}


def uncertainty(conf: Confidence, measure: Measure = "sequence") -> float:
    """How unsure the model is of a text, by ``measure`` (:data:`MEASURES`); 0 for a text without words."""
    if measure == "sequence":
        return -conf.log
    if measure == "word-mean":
        return -conf.log / conf.words if conf.words else 0.0
    if measure == "lowest-word":
        return 1.0 - conf.lowest
    raise ValueError(f"unknown measure {measure!r}; one of {', '.join(MEASURES)}")
