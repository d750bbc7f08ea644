"""What a batch job does to a chunk of documents, and the record it writes for each: ``predict`` (the
input record with ``entities``, or, as ``label-studio``, a Label Studio task with the model's prediction)
or ``deid`` (``id``, the de-identified ``text`` and its ``items``).

Both engines call :meth:`Task.process` on their chunks and write :meth:`Task.record`, so a row looks the
same whether it ran in this process or on a Ray actor. A row that failed gets ``"error"`` (where and
why) and no result, and its record never holds the text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

from loraner.data import labelstudio
from loraner.data.labelstudio import LabelNames
from loraner.deid import DeidConfig, DeidOutput, DeidPipeline
from loraner.inference.uncertainty import confidence
from loraner.jobs.documents import Document

TaskName = Literal["predict", "deid"]
# What a predict job writes per row: the input record with "entities", or a Label Studio task.
OutputFormat = Literal["entities", "label-studio"]
ERROR = "error"


@dataclass(frozen=True)
class Outcome:
    """A document and what became of it: its result, or the error that names it."""

    document: Document
    result: Any = None
    error: str | None = None


class Task:
    """A model applied to documents. Subclasses say how a chunk runs and what a record holds."""

    name: TaskName
    unit: str  # what a row is, for progress and summaries
    keys = False  # whether rows may carry a "document_key" (which must then be a string)
    columns: tuple[str, ...] = ()  # the columns a batch of columns gains or has replaced

    def run(self, documents: Sequence[Document]) -> list[Any]:
        raise NotImplementedError

    def output(self, document: Document, result: Any) -> dict[str, Any]:
        raise NotImplementedError

    def failed(self, document: Document, error: str) -> dict[str, Any] | None:
        """The record of a row that failed (None: the output gets no record for it)."""
        raise NotImplementedError

    def process(self, documents: Sequence[Document]) -> list[Outcome]:
        """The good documents in one call; if it fails, one call each, so a document that fails is marked
        alone. Errors name the exception type, never its message (which may quote the text)."""
        good = [document for document in documents if document.problem is None]
        ran = iter(self._run_all(good) if good else [])
        return [next(ran) if d.problem is None else Outcome(d, error=d.error) for d in documents]

    def _run_all(self, documents: list[Document]) -> list[Outcome]:
        try:
            results = self.run(documents)
        except Exception:
            return [self._run_one(document) for document in documents]
        return [Outcome(d, result) for d, result in zip(documents, results, strict=True)]

    def _run_one(self, document: Document) -> Outcome:
        try:
            return Outcome(document, self.run([document])[0])
        except Exception as exc:
            return Outcome(document, error=document.failure(f"inference failed ({type(exc).__name__})"))

    def record(self, outcome: Outcome) -> dict[str, Any] | None:
        """The output record of one row, as both engines write it (None: none for this row)."""
        if outcome.error is not None:
            return self.failed(outcome.document, outcome.error)
        return self.output(outcome.document, outcome.result)

    def column_values(self, outcomes: Sequence[Outcome]) -> dict[str, list[Any]]:
        """:attr:`columns` and ``error`` for a batch of columns (Parquet, a Ray batch of your own)."""
        records = [self.record(outcome) for outcome in outcomes]
        values = {name: [(record or {}).get(name) for record in records] for name in self.columns}
        values[ERROR] = [outcome.error for outcome in outcomes]
        return values


class PredictTask(Task):
    """Entities per text: the output record is the input record with ``entities`` or, with
    ``output_format="label-studio"``, a Label Studio task (:func:`loraner.data.labelstudio.task`): the
    record's fields as its data and one prediction, scored by the text's sequence confidence
    (:mod:`loraner.inference.uncertainty`) and versioned ``NAME@FINGERPRINT``."""

    name: TaskName = "predict"
    unit = "text"
    columns = ("entities",)

    def __init__(
        self, predictor: Any, output_format: OutputFormat = "entities", label_names: LabelNames | None = None
    ) -> None:
        self.predictor = predictor
        self.output_format = output_format
        self.label_names = label_names or LabelNames()
        self.model_version = predictor.version if output_format == "label-studio" else ""

    def run(self, documents: Sequence[Document]) -> list[Any]:
        texts = [d.text for d in documents]
        if self.output_format == "entities":
            return self.predictor.predict_batch(texts)
        return [
            (analysis.entities, confidence(text, analysis, self.predictor.aggregation).value)
            for text, analysis in zip(texts, self.predictor.analyze_batch(texts), strict=True)
        ]

    def output(self, document: Document, result: Any) -> dict[str, Any]:
        if self.output_format == "entities":
            return {**document.record, "entities": [e.to_dict() for e in result]}
        entities, score = result
        predicted = labelstudio.prediction(entities, self.label_names, self.model_version, score)
        return labelstudio.task(document.record, document.text or "", self.label_names, predicted)

    def failed(self, document: Document, error: str) -> dict[str, Any] | None:
        if self.output_format == "label-studio":
            return None
        kept = {k: v for k, v in document.record.items() if k != "text"}
        return {**kept, "entities": None, ERROR: error}


class DeidTask(Task):
    """De-identified text per document: ``{"id", "text", "items"}`` (and ``"original"`` only if asked);
    other input fields are not copied. Pseudonyms are consistent within a chunk (and across chunks with
    ``consistent_across_documents``)."""

    name: TaskName = "deid"
    unit = "document"
    keys = True

    def __init__(self, predictor: Any, config: DeidConfig, include_original: bool = False) -> None:
        self.pipeline = DeidPipeline(partial(predictor.predict_batch, o_threshold=config.o_threshold), config)
        self.include_original = include_original
        self.columns = ("original", "text", "items") if include_original else ("text", "items")

    def run(self, documents: Sequence[Document]) -> list[DeidOutput]:
        return self.pipeline.run_batch([d.text for d in documents], [d.key for d in documents])

    def output(self, document: Document, result: DeidOutput) -> dict[str, Any]:
        record = {"id": document.id, **result.result.to_dict()}
        if self.include_original:
            record["original"] = document.text
        return record

    def failed(self, document: Document, error: str) -> dict[str, Any]:
        return {"id": document.id, "text": None, "items": None, ERROR: error}


TASKS: dict[str, type[Task]] = {"predict": PredictTask, "deid": DeidTask}


def make_task(
    name: TaskName,
    predictor: Any,
    *,
    deid_config: DeidConfig | None = None,
    include_original: bool = False,
    output_format: OutputFormat = "entities",
    label_names: LabelNames | None = None,
) -> Task:
    """The task ``name`` over a loaded predictor (``deid``: run with the config's ``o_threshold``;
    ``predict``: written as ``output_format``, Label Studio tasks for the control ``label_names``)."""
    if name == "deid":
        return DeidTask(predictor, deid_config or DeidConfig(), include_original)
    return PredictTask(predictor, output_format, label_names)
