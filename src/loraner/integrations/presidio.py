"""A loraner model inside Microsoft Presidio (the ``[presidio]`` extra).

>>> from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine, RecognizerRegistry  # doctest: +SKIP
>>> recognizer = LoranerRecognizer(model="runs/quickstart/merged")
>>> registry = RecognizerRegistry()
>>> registry.load_predefined_recognizers()          # Presidio's pattern recognizers (and its spaCy NER one,
>>> registry.remove_recognizer("SpacyRecognizer")   # which the loraner model replaces)
>>> registry.add_recognizer(recognizer)
>>> analyzer = AnalyzerEngine(registry=registry, nlp_engine=LoranerNlpEngine([recognizer]))
>>> analyzer.analyze("Kari Nordmann, tlf. 912 34 567", language="en")
>>> BatchAnalyzerEngine(analyzer).analyze_iterator(notes, language="en")  # one predict_batch per 256 notes

:class:`LoranerRecognizer` is a Presidio ``EntityRecognizer`` whose entities come from
:class:`~loraner.inference.NERPredictor`: long texts are windowed (never truncated) and offsets are the
model's own. Entity types are renamed to Presidio's names by :data:`PRESIDIO_ENTITIES` (overridable);
the score is the model's, and the explanation names the model.

Presidio's ``BatchAnalyzerEngine`` batches only through its NLP engine (``process_batch``), then asks
every recognizer about one text at a time. :class:`LoranerNlpEngine` is that NLP engine: spaCy's blank
pipelines for tokens (rule-based; no model to download), and each loraner recognizer's model run once
per batch of texts, its entities handed to the recognizer with the text's NLP artifacts. With any other
NLP engine the recognizer predicts each text itself: the same entities, without the batching.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

try:
    import spacy
    from presidio_analyzer import AnalysisExplanation, EntityRecognizer, RecognizerResult
    from presidio_analyzer.nlp_engine import NlpArtifacts, SpacyNlpEngine
except ImportError as exc:  # the extra is not installed
    raise ImportError(
        "loraner.integrations.presidio needs Presidio: pip install 'loraner[presidio]'"
    ) from exc

from loraner import __version__
from loraner.errors import ConfigError
from loraner.inference.predictor import NERPredictor
from loraner.integrations.loading import load_predictor
from loraner.types import Entity, types_of_labels

__all__ = [
    "DEFAULT_TEXTS_PER_BATCH",
    "PRESIDIO_ENTITIES",
    "LoranerNlpArtifacts",
    "LoranerNlpEngine",
    "LoranerRecognizer",
    "LoranerResult",
    "presidio_entity_mapping",
]

logger = logging.getLogger(__name__)

# A model's entity type -> the entity name Presidio's recognizers, anonymizer operators and users know.
# Types not listed keep their own name (as Presidio's spaCy engine does); ``entity_mapping`` overrides
# any row, and maps a type to None to leave it out.
PRESIDIO_ENTITIES: dict[str, str] = {
    # loraner's clinical PHI types (`loraner data synth`, Nor-DeID)
    "PATIENT": "PERSON",  # any person's name: patient, relative, health worker
    "LOC": "LOCATION",  # places, addresses and named health-care units
    "DATE": "DATE_TIME",
    "PHONE": "PHONE_NUMBER",
    # fødselsnummer and other national ID numbers (the model does not tell them from record numbers,
    # so not Presidio's country-specific names such as SE_PERSONNUMMER, which mean a validated match)
    "ID": "NATIONAL_ID",
    "AGE": "AGE",
    # CoNLL-2003 and OntoNotes types
    "PER": "PERSON",
    "PERSON": "PERSON",
    "ORG": "ORGANIZATION",
    "GPE": "LOCATION",
    "LOCATION": "LOCATION",
    "TIME": "DATE_TIME",
    "NORP": "NRP",
    "EMAIL": "EMAIL_ADDRESS",
}

# Texts per predict_batch in LoranerNlpEngine.process_batch, at least: Presidio's BatchAnalyzerEngine
# passes batch_size=1 unless told, which would run the model on one text at a time. Many texts per call
# let the predictor group windows of similar length; what one call holds at once (each text's spaCy doc,
# tokens and token probabilities) is what bounds it.
DEFAULT_TEXTS_PER_BATCH = 256
BLANK_PIPELINE = "blank"  # the model_name of each language in LoranerNlpEngine.models


def presidio_entity_mapping(
    model_types: Sequence[str], overrides: Mapping[str, str | None] | None = None
) -> dict[str, str | None]:
    """Each of the model's entity types -> its Presidio entity name (None: not reported), from
    :data:`PRESIDIO_ENTITIES` with ``overrides`` on top. An override of a type the model does not predict
    is an error (a typo would otherwise change nothing)."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(model_types))
    if unknown:
        raise ConfigError(
            f"entity_mapping names types the model does not predict: {', '.join(unknown)} "
            f"(its types: {', '.join(model_types) or 'none'})"
        )
    return {t: overrides[t] if t in overrides else PRESIDIO_ENTITIES.get(t, t) for t in model_types}


class LoranerRecognizer(EntityRecognizer):
    """A Presidio recognizer over a loraner model.

    ``model``: a merged or exported (ONNX) model directory, a run directory or a hub id
    ``OWNER/NAME[@REVISION]``; or ``adapter``: a LoRA adapter directory (or hub id) on ``base`` (default:
    the base it records); or ``predictor``: a predictor already loaded, e.g. one adapter of a
    :class:`~loraner.inference.adapters.MultiAdapterPredictor` (``multi.predictor("phi")``), so that
    several recognizers share one base in memory. ``entity_mapping`` overrides rows of
    :data:`PRESIDIO_ENTITIES` for this model. ``backend`` and ``settings`` (``dtype``, ``threads``,
    ``o_threshold``, ``batch_size``, ...) go to :meth:`NERPredictor.from_pretrained`.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        adapter: str | Path | None = None,
        base: str | None = None,
        predictor: NERPredictor | None = None,
        entity_mapping: Mapping[str, str | None] | None = None,
        supported_language: str = "en",
        name: str = "LoranerRecognizer",
        context: list[str] | None = None,
        backend: str = "auto",
        **settings: Any,
    ) -> None:
        if predictor is None:
            predictor = load_predictor(model, adapter=adapter, base=base, backend=backend, **settings)
        elif model is not None or adapter is not None or base is not None or settings:
            raise ConfigError("give either predictor= or the model to load (model=/adapter=), not both")
        self.predictor = predictor
        self.model_types = types_of_labels(predictor.labels)
        self.entity_mapping = presidio_entity_mapping(self.model_types, entity_mapping)
        super().__init__(
            supported_entities=sorted({e for e in self.entity_mapping.values() if e}),
            name=name,
            supported_language=supported_language,
            version=__version__,
            context=context,
        )

    @property
    def model_name(self) -> str:
        """The model as ``loraner.json`` names it (its path where it has no name)."""
        return self.predictor.name if self.predictor.name != "model" else self.predictor.path

    def load(self) -> None:
        """Nothing to do: the constructor loads the model (its labels decide the supported entities)."""

    def analyze(
        self, text: str, entities: list[str] | None, nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """The model's entities in ``text`` as Presidio results, those of ``entities`` only (all when
        empty). Predicted here unless :class:`LoranerNlpEngine` already did for this text."""
        found = None
        if isinstance(nlp_artifacts, LoranerNlpArtifacts):
            found = nlp_artifacts.entities_of(self, text)
        if found is None:
            found = self.predictor.predict(text)
        return self.results(found, entities)

    def predict_batch(self, texts: Sequence[str]) -> list[list[Entity]]:
        """The model's entities in each text: one :meth:`NERPredictor.predict_batch` for them all."""
        return self.predictor.predict_batch(texts)

    def results(
        self, found: Iterable[Entity], entities: Iterable[str] | None = None
    ) -> list[RecognizerResult]:
        """Presidio results for the model's ``found`` entities (renamed; ``entities``: keep only these)."""
        wanted = set(entities) if entities else None
        out = []
        for entity in found:
            kind = self.entity_mapping.get(entity.type, entity.type)
            if kind is None or (wanted is not None and kind not in wanted):
                continue
            explanation = AnalysisExplanation(
                recognizer=self.name,
                original_score=entity.score,
                textual_explanation=(
                    f"Identified as {kind} ({entity.type}) by the loraner model {self.model_name}"
                ),
            )
            out.append(
                LoranerResult(
                    entity_type=kind,
                    start=entity.start,
                    end=entity.end,
                    score=entity.score,
                    analysis_explanation=explanation,
                    recognition_metadata={
                        RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                        RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                        "loraner_model": self.model_name,
                        "loraner_type": entity.type,
                    },
                )
            )
        return out


class LoranerResult(RecognizerResult):
    """A Presidio result of a loraner recognizer, which copies itself cheaply.

    Presidio's context enhancer deep-copies every result of every text (``copy.deepcopy``, even when no
    recognizer has context words); the generic deep copy walks the explanation and metadata objects
    one by one, and cost a third of Presidio's own time per text. All their fields are numbers, strings
    or None, so copying the two objects one level deep gives an equal, independent result.
    """

    def __deepcopy__(self, memo: dict[int, Any]) -> LoranerResult:
        twin = copy.copy(self)
        twin.analysis_explanation = copy.copy(self.analysis_explanation)
        twin.recognition_metadata = dict(self.recognition_metadata)
        memo[id(self)] = twin
        return twin


# The artifacts Presidio's context enhancement reads (the words around a match): made when first read.
_TOKEN_ARTIFACTS = frozenset({"tokens", "tokens_indices", "lemmas", "keywords"})


class LoranerNlpArtifacts(NlpArtifacts):
    """Presidio's NLP artifacts of one text plus, per loraner recognizer, the entities its model found
    in that text during :meth:`LoranerNlpEngine.process_batch`.

    The tokens (``spacy.blank(language)``), their lemmas (lower-cased words) and keywords are made the
    first time anything reads them: Presidio's context enhancement reads them only around the results
    of recognizers that have context words (its pattern recognizers), and a registry of loraner
    recognizers alone never does. On a note, tokenizing and Presidio's keyword pass cost more than the
    rest of the bridge's work per text.
    """

    # Slots, outside __dict__: Presidio's to_json (its decision-process log) serialises __dict__,
    # and the predictions are not JSON; the recognizers' results are logged on their own.
    __slots__ = ("_unread", "predictions")

    def __init__(
        self,
        text: str,
        language: str,
        nlp_engine: LoranerNlpEngine,
        predictions: Mapping[str, tuple[str, list[Entity]]] | None = None,
    ) -> None:
        # NlpArtifacts.__init__ runs when a token artifact is first read (__getattr__)
        self.entities: list[Any] = []  # the blank pipelines have no NER: the recognizers report it
        self.scores: list[float] = []
        self.nlp_engine = nlp_engine
        self._unread: tuple[str, str] | None = (text, language)
        self.predictions: dict[str, tuple[str, list[Entity]]] = dict(predictions or {})

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes not set yet: the token artifacts before their first read.
        if name not in _TOKEN_ARTIFACTS or self._unread is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        text, language = self._unread
        self._unread = None
        doc = self.nlp_engine.nlp[language](text)
        NlpArtifacts.__init__(
            self,
            entities=self.entities,
            tokens=doc,
            tokens_indices=[token.idx for token in doc],
            lemmas=[token.lemma_ or token.lower_ for token in doc],
            nlp_engine=self.nlp_engine,
            language=language,
            scores=self.scores,
        )
        return getattr(self, name)

    def to_json(self) -> str:
        self.tokens  # noqa: B018 (made on first read; to_json serialises __dict__)
        return super().to_json()

    def entities_of(self, recognizer: LoranerRecognizer, text: str) -> list[Entity] | None:
        """What ``recognizer``'s model found in ``text``, if it ran on these artifacts' text."""
        found = self.predictions.get(recognizer.id)
        if found is None or found[0] != text:
            return None
        return found[1]


class LoranerNlpEngine(SpacyNlpEngine):
    """Presidio's NLP engine for loraner recognizers: tokens from ``spacy.blank(language)`` (rule-based
    tokenization, nothing downloaded; lower-cased words stand in for lemmas in Presidio's context
    enhancement), made only if read (:class:`LoranerNlpArtifacts`), and in :meth:`process_batch` each
    of ``recognizers`` run once per batch of texts.

    ``languages``: default, those of ``recognizers`` (else English). ``texts_per_batch``: the least
    number of texts per ``predict_batch``; a larger ``batch_size`` given to Presidio's batch engine wins.
    """

    engine_name = "loraner"

    def __init__(
        self,
        recognizers: Sequence[LoranerRecognizer] = (),
        *,
        languages: Sequence[str] | None = None,
        texts_per_batch: int = DEFAULT_TEXTS_PER_BATCH,
    ) -> None:
        if texts_per_batch < 1:
            raise ConfigError(f"texts_per_batch must be >= 1 (got {texts_per_batch})")
        self.recognizers = list(recognizers)
        if languages is None:
            languages = list(dict.fromkeys(r.supported_language for r in self.recognizers)) or ["en"]
        super().__init__(models=[{"lang_code": lang, "model_name": BLANK_PIPELINE} for lang in languages])
        self.texts_per_batch = texts_per_batch

    def load(self) -> None:
        self.nlp = {model["lang_code"]: spacy.blank(model["lang_code"]) for model in self.models}

    def get_supported_entities(self) -> list[str]:
        """None: blank pipelines have no NER; the loraner recognizers report the entities."""
        return []

    def process_text(self, text: str, language: str) -> LoranerNlpArtifacts:
        self._check_language(language)
        return LoranerNlpArtifacts(text, language, self)

    def process_batch(
        self,
        texts: Iterable[Any],
        language: str,
        batch_size: int = 1,
        n_process: int = 1,
        as_tuples: bool = False,
    ) -> Iterator[tuple[Any, ...]]:
        """Presidio's ``(text, artifacts)`` (``(text, artifacts, context)`` with ``as_tuples``) per text,
        the texts taken ``max(batch_size, texts_per_batch)`` at a time through each recognizer's model.
        ``n_process`` is not used: the model's threads are the predictor's, and a text is tokenized
        only when its artifacts are read."""
        self._check_language(language)
        size = max(batch_size, self.texts_per_batch)
        recognizers = [r for r in self.recognizers if r.supported_language == language]
        items = iter(texts)
        while chunk := list(islice(items, size)):
            if as_tuples:
                if not all(isinstance(item, tuple) and len(item) == 2 for item in chunk):
                    raise ValueError("with as_tuples=True, texts must be (text, context) tuples")
                strings, contexts = [str(text) for text, _ in chunk], [context for _, context in chunk]
            else:
                strings, contexts = [str(text) for text in chunk], None
            found = {r.id: r.predict_batch(strings) for r in recognizers}
            for i, text in enumerate(strings):
                predictions = {rid: (text, entities[i]) for rid, entities in found.items()}
                artifacts = LoranerNlpArtifacts(text, language, self, predictions)
                yield (text, artifacts) if contexts is None else (text, artifacts, contexts[i])

    def _check_language(self, language: str) -> None:
        if not self.nlp:  # AnalyzerEngine loads its engine; an engine used on its own loads here
            self.load()
        if language not in self.nlp:
            raise ValueError(
                f"LoranerNlpEngine has no pipeline for language {language!r} "
                f"(its languages: {', '.join(self.nlp)})"
            )
