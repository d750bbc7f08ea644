"""Detector + patterns + operators in one object: texts in, de-identified texts (and the spans used) out.

The detector is any ``predict_batch`` callable (texts → entities per text), e.g. a bound
``NERPredictor.predict_batch``. Taking a callable keeps this layer free of torch and of ``inference``:

>>> pipeline = DeidPipeline(predictor.predict_batch, load_deid_config("configs/deid.yaml"))  # doctest: +SKIP
>>> entities, result = pipeline.run("Kari Nordmann, tlf. 912 34 567")                      # doctest: +SKIP

``config.o_threshold`` is *not* applied here: the caller binds it to the detector, e.g.
``partial(predictor.predict_batch, o_threshold=config.o_threshold)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from loraner.deid.config import DeidConfig, resolve_secret, validate_deid_config
from loraner.deid.engine import DeidResult, deidentify_batch
from loraner.deid.propagation import propagate_spans
from loraner.deid.recognizers import fuse_spans, recognize
from loraner.deid.spans import check_spans, tidy_spans
from loraner.errors import DataError
from loraner.types import Entity

PredictBatch = Callable[[Sequence[str]], list[list[Entity]]]


class DeidOutput(NamedTuple):
    """``entities``: the spans that were de-identified (model spans fused with pattern spans), on the
    original text. ``result``: the rewritten text and one item per replaced span."""

    entities: list[Entity]
    result: DeidResult


class DeidPipeline:
    """Model entities → (if ``config.recognizers.enabled``) fused with pattern spans → operators.

    The secret is checked once here, so a misconfigured ``hash`` fails before any text is processed.
    """

    def __init__(self, predict_batch: PredictBatch, config: DeidConfig) -> None:
        self.predict_batch = predict_batch
        self.config = config
        resolve_secret(config)

    def run(self, text: str, document_key: str | None = None) -> DeidOutput:
        return self.run_batch([text], [document_key])[0]

    def run_batch(
        self, texts: Sequence[str], document_keys: Sequence[str | None] | None = None
    ) -> list[DeidOutput]:
        """One detector call for all texts; pseudonyms are shared across the batch (see
        :func:`~loraner.deid.engine.deidentify_batch`)."""
        return self.apply(texts, self.predict_batch(list(texts)), document_keys)

    def apply(
        self,
        texts: Sequence[str],
        model_entities: Sequence[Sequence[Entity]],
        document_keys: Sequence[str | None] | None = None,
    ) -> list[DeidOutput]:
        """De-identify with detector output computed elsewhere (e.g. once, for several configs)."""
        return deidentify_entities(texts, model_entities, self.config, document_keys)


def fused_spans(text: str, model_entities: Sequence[Entity], config: DeidConfig) -> list[Entity]:
    """The spans to de-identify: model spans, with their names spread to the rest of the text for the
    ``config.propagate`` types, plus pattern spans when ``config.recognizers.enabled``.

    Fusing with no pattern spans still resolves overlaps, so the list always equals what the engine
    replaces (entity scores are computed on it).
    """
    # Fusion re-slices entity text from ``text``, which would hide a detector whose offsets are off.
    check_spans(text, model_entities, source="detector output")
    if config.tidy:
        model_entities = tidy_spans(text, model_entities)
    if config.propagate:
        spread = propagate_spans(text, model_entities, config.propagate)
        model_entities = fuse_spans(model_entities, spread, text=text)
    patterns = recognize(text, config.recognizers) if config.recognizers.enabled else []
    return fuse_spans(model_entities, patterns, text=text)


def deidentify_entities(
    texts: Sequence[str],
    model_entities: Sequence[Sequence[Entity]],
    config: DeidConfig,
    document_keys: Sequence[str | None] | None = None,
) -> list[DeidOutput]:
    """The step after the detector, for callers that run the detector themselves (the service does,
    in its own worker pool): fuse each text's spans, then one :func:`deidentify_batch` call."""
    if len(model_entities) != len(texts):
        raise DataError(f"{len(texts)} texts but {len(model_entities)} entity lists")
    spans = [fused_spans(t, e, config) for t, e in zip(texts, model_entities, strict=True)]
    results = deidentify_batch(texts, spans, config, document_keys=document_keys)
    return [DeidOutput(s, r) for s, r in zip(spans, results, strict=True)]


def with_overrides(
    config: DeidConfig, *, o_threshold: float | None = None, recognizers: bool | None = None
) -> DeidConfig:
    """``config`` with command-line overrides (``None`` = keep), re-validated so a bad value fails the
    same way as in the YAML file."""
    raw: dict[str, Any] = config.model_dump()
    if o_threshold is not None:
        raw["o_threshold"] = o_threshold
    if recognizers is not None:
        raw["recognizers"] = {**raw["recognizers"], "enabled": recognizers}
    return validate_deid_config(raw, "deid config overrides")


__all__ = [
    "DeidOutput",
    "DeidPipeline",
    "PredictBatch",
    "deidentify_entities",
    "fused_spans",
    "with_overrides",
]
