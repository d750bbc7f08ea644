"""A model's scores on examples, computed from the entities the inference engine returns.

Every score of the project comes from here: the "before" and "after" numbers of a training run, the
per-epoch validation that picks the best checkpoint, and ``loraner evaluate``. Each text goes through
:meth:`NERPredictor.analyze_batch` (the windows, batches and decoding that serving uses); its entities
are scored against the gold spans, and its token probabilities give the loss and token accuracy.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from loraner.data import load_splits
from loraner.data.alignment import gold_token_tags
from loraner.data.examples import as_span_example
from loraner.errors import ConfigError
from loraner.eval.metrics import entity_metrics
from loraner.inference.predictor import NERPredictor, TextPrediction
from loraner.modeldir import resolve_model_dir
from loraner.settings import ExperimentConfig
from loraner.types import Entity, Example, SpanExample

log = logging.getLogger(__name__)

# Texts per analyze_batch call: enough for length-sorted window batching to pay off, while the token
# probabilities of one call stay small (they are dropped after scoring).
TEXTS_PER_CALL = 256


@dataclass
class Evaluation:
    """``metrics``: precision, recall, f1, per_type, accuracy, loss, examples. ``examples``: the gold, as
    texts with character spans (word-level examples joined by spaces). ``predictions``: the entities the
    predictor returned for each text."""

    metrics: dict[str, Any]
    examples: list[SpanExample]
    predictions: list[list[Entity]]


@dataclass
class _TokenTally:
    """Loss and accuracy over the tokens a model is trained on, summed across texts."""

    loss: float = 0.0
    correct: int = 0
    counted: int = 0
    unknown: int = 0

    def add(self, probs: np.ndarray, tags: Sequence[str | None], label_index: dict[str, int]) -> None:
        rows, gold = [], []
        for position, tag in enumerate(tags):
            if tag is None:
                continue
            index = label_index.get(tag)
            if index is None:  # a type the model was never given: a sure miss, no defined loss
                self.unknown += 1
                self.counted += 1
                continue
            rows.append(position)
            gold.append(index)
        if not rows:
            return
        picked = probs[rows, gold]
        self.loss += float(-np.log(np.maximum(picked, 1e-12)).sum())
        self.correct += int((probs[rows].argmax(axis=1) == np.asarray(gold)).sum())
        self.counted += len(rows)


def evaluate(
    predictor: NERPredictor,
    examples: Sequence[Example],
    *,
    o_threshold: float | None = None,
    progress: bool = False,
) -> Evaluation:
    """Score ``predictor`` on ``examples``: entity P/R/F1 (micro and per type), token accuracy and
    cross-entropy on the tokens the model is trained on (first subwords of words for word-level models,
    every subword for span-level ones)."""
    gold = [as_span_example(ex) for ex in examples]
    word_level = predictor.word_split == "conll"
    label_index = _label_index(predictor.labels)
    tally = _TokenTally()
    predictions: list[list[Entity]] = []
    for chunk, results in _analyze(predictor, gold, o_threshold, progress):
        for ex, result in zip(chunk, results, strict=True):
            predictions.append(result.entities)
            tags = gold_token_tags(result.tokens.offsets, result.tokens.word_ids, ex.spans, word_level)
            tally.add(result.probs, tags, label_index)
    if tally.unknown:
        log.warning("%d gold tokens carry types the model does not know: scored as wrong", tally.unknown)
    metrics = entity_metrics([ex.spans for ex in gold], predictions)
    metrics["accuracy"] = tally.correct / tally.counted if tally.counted else 0.0
    scored = tally.counted - tally.unknown
    metrics["loss"] = tally.loss / scored if scored else 0.0
    metrics["examples"] = len(gold)
    return Evaluation(metrics, gold, predictions)


def _analyze(
    predictor: NERPredictor, gold: list[SpanExample], o_threshold: float | None, progress: bool
) -> Iterator[tuple[list[SpanExample], list[TextPrediction]]]:
    calls = math.ceil(len(gold) / TEXTS_PER_CALL)
    quiet = not progress or calls < 4
    with tqdm(total=len(gold), desc="evaluate", unit="text", leave=False, disable=quiet) as bar:
        for at in range(0, len(gold), TEXTS_PER_CALL):
            chunk = gold[at : at + TEXTS_PER_CALL]
            yield chunk, predictor.analyze_batch([ex.text for ex in chunk], o_threshold=o_threshold)
            bar.update(len(chunk))


def _label_index(labels: Sequence[str]) -> dict[str, int]:
    """Gold IOB2 tags -> the model's label ids. A model with IO labels (``PER``) takes ``B-PER`` and
    ``I-PER`` both as ``PER``."""
    index = {label: i for i, label in enumerate(labels)}
    for label, i in list(index.items()):
        if label != "O" and label[:2] not in ("B-", "I-"):
            index.setdefault(f"B-{label}", i)
            index.setdefault(f"I-{label}", i)
    return index


def split_examples(cfg: ExperimentConfig, split: str) -> list[Example]:
    splits = load_splits(cfg.data)
    if split not in splits:
        raise ConfigError(f"split {split!r} not in the data (have: {', '.join(splits)})")
    return splits[split]


def evaluate_model(
    model: str | Path, cfg: ExperimentConfig, split: str = "test", **predictor_options: Any
) -> dict[str, Any]:
    """``loraner evaluate``: a model directory (merged, exported, an adapter, or a run directory) scored
    on ``split`` of the data ``cfg`` names. The window and word split are the model's own (its
    ``loraner.json``), as when it is served; ``predictor_options`` go to
    :meth:`NERPredictor.from_pretrained`."""
    model_dir = resolve_model_dir(model)
    examples = split_examples(cfg, split)
    predictor_options.setdefault("batch_size", cfg.training.eval_batch_size)
    predictor = NERPredictor.from_pretrained(model_dir, **predictor_options)
    evaluation = evaluate(predictor, examples, progress=True)
    return {"name": cfg.name, "split": split, "model": str(model_dir), split: evaluation.metrics}
