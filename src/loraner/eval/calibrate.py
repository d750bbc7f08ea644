"""Recall you choose: the ``o_threshold`` that reaches a character-level PHI recall on held-out notes
(``loraner calibrate``).

A de-identification user names the recall they need and accepts the precision that comes with it. The
model runs once over the split (the validation notes: never the test split the result is reported on);
each candidate threshold then only re-decodes the stored token probabilities and runs the
de-identification pipeline, so a sweep of a dozen thresholds costs one model pass. The chosen threshold
is the smallest one that reaches the target (the least precision given up), written into a copy of the
de-identification config.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from loraner.deid import DeidConfig
from loraner.errors import ConfigError
from loraner.eval.deid import deid_examples, score_deid
from loraner.eval.evaluate import TEXTS_PER_CALL
from loraner.inference import NERPredictor
from loraner.inference.predictor import TextPrediction
from loraner.modeldir import resolve_model_dir
from loraner.settings import ExperimentConfig, load_yaml
from loraner.types import Entity, SpanExample

# P(O) cut-offs tried: argmax (None) first, then ever more recall. Near 1 the steps shrink: that is
# where a trained model's O probabilities sit.
CANDIDATE_THRESHOLDS: tuple[float | None, ...] = (
    None,
    0.5,
    0.7,
    0.8,
    0.9,
    0.95,
    0.97,
    0.98,
    0.99,
    0.995,
    0.998,
    0.999,
    0.9995,
    0.9999,
)


@dataclass(frozen=True)
class ThresholdScore:
    o_threshold: float | None
    char_recall: float
    precision: float
    recall: float
    f1: float
    leaks: int

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass(frozen=True)
class Calibration:
    target_char_recall: float
    split: str
    recognizers: bool
    scores: list[ThresholdScore]
    chosen: ThresholdScore | None  # None: no candidate reached the target

    @property
    def argmax(self) -> ThresholdScore:
        return self.scores[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "target_char_recall": self.target_char_recall,
            "split": self.split,
            "recognizers": self.recognizers,
            "chosen": self.chosen.to_dict() if self.chosen else None,
            "argmax": self.argmax.to_dict(),
            "scores": [s.to_dict() for s in self.scores],
        }


def calibrate_o_threshold(
    model_dir: Path | str,
    cfg: ExperimentConfig,
    deid_config: DeidConfig,
    target_char_recall: float,
    *,
    split: str = "validation",
    recognizers: bool = True,
    candidates: Sequence[float | None] = CANDIDATE_THRESHOLDS,
    predictor: NERPredictor | None = None,
    **predictor_options: Any,
) -> Calibration:
    """Score every candidate ``o_threshold`` on ``split`` and choose the smallest that reaches
    ``target_char_recall`` (character-level PHI recall of the de-identified notes, with the config's
    operators, tidying, propagation and, if ``recognizers``, its pattern recognisers)."""
    if not 0.0 < target_char_recall <= 1.0:
        raise ConfigError(f"target char recall must be in (0, 1] (got {target_char_recall})")
    examples = deid_examples(cfg, split, cfg.data.view)
    if not any(ex.spans for ex in examples):  # before the model loads: bad data should not cost a load
        raise ConfigError(f"the '{split}' split has no PHI spans to calibrate on")
    if predictor is None:
        predictor = NERPredictor.from_pretrained(resolve_model_dir(model_dir), **predictor_options)
    analyses = _analyze(predictor, [ex.text for ex in examples])
    scores = [
        _score(examples, predictor, analyses, deid_config, threshold, recognizers) for threshold in candidates
    ]
    reached = [s for s in scores if s.char_recall >= target_char_recall]
    return Calibration(target_char_recall, split, recognizers, scores, reached[0] if reached else None)


def _analyze(predictor: NERPredictor, texts: list[str]) -> list[TextPrediction]:
    out: list[TextPrediction] = []
    for i in range(0, len(texts), TEXTS_PER_CALL):
        out += predictor.analyze_batch(texts[i : i + TEXTS_PER_CALL])
    return out


def _score(
    examples: Sequence[SpanExample],
    predictor: NERPredictor,
    analyses: Sequence[TextPrediction],
    deid_config: DeidConfig,
    threshold: float | None,
    recognizers: bool,
) -> ThresholdScore:
    entities: list[list[Entity]] = [
        predictor.decode(ex.text, a.tokens, log_probabilities(a.probs), threshold).entities
        for ex, a in zip(examples, analyses, strict=True)
    ]
    # The threshold acts through the entities decoded above; the config's own o_threshold is not read here.
    summary = score_deid(examples, entities, deid_config, recognizers).evaluator.summary(include_leaks=False)
    micro = summary["entity"]["micro"]
    return ThresholdScore(
        o_threshold=threshold,
        char_recall=summary["char_recall"],
        precision=micro["precision"],
        recall=micro["recall"],
        f1=micro["f1"],
        leaks=summary["leak_count"],
    )


def log_probabilities(probs: np.ndarray) -> np.ndarray:
    """Logits whose softmax is ``probs`` (``decode`` takes logits): their logarithms."""
    with np.errstate(divide="ignore"):  # a probability that underflowed to 0 is -inf: softmax gives 0
        return np.log(probs)


def write_calibrated_config(source: Path | None, target: Path, calibration: Calibration, model: str) -> Path:
    """A copy of the de-identification config at ``source`` (or the defaults) with the chosen
    ``o_threshold``, headed by where it came from."""
    if calibration.chosen is None:
        raise ConfigError("no threshold reached the target: nothing to write")
    raw: dict[str, Any] = load_yaml(source.read_text(encoding="utf-8")) if source else {}
    raw = dict(raw or {})
    raw["o_threshold"] = calibration.chosen.o_threshold
    chosen, argmax = calibration.chosen, calibration.argmax
    head = [
        f"# Calibrated by `loraner calibrate` for {model} on the '{calibration.split}' split:",
        f"# o_threshold {chosen.o_threshold} reaches character-level PHI recall {chosen.char_recall:.4f}"
        f" (target {calibration.target_char_recall}) at entity precision {chosen.precision:.4f}"
        f" (argmax: recall {argmax.char_recall:.4f}, precision {argmax.precision:.4f}),"
        f" pattern recognisers {'on' if calibration.recognizers else 'off'}.",
        f"# Everything else is from {source if source else 'the built-in defaults'}.",
    ]
    target.parent.mkdir(parents=True, exist_ok=True)
    body = yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)
    target.write_text("\n".join(head) + "\n" + body, encoding="utf-8")
    return target
