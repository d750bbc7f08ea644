"""Label Studio's task format, both ways: its JSON export of a text-labelling project read as span examples
(``data.format: label-studio``), and the tasks and predictions loraner writes for it (``loraner predict
--output-format label-studio``, ``loraner rank``, the ML backend of ``loraner serve``).

An export is a JSON list of tasks (a ``.jsonl`` file, one task a line, is read too)::

    {"id": 7, "data": {"text": "..."},
     "annotations": [{"id": 3, "completed_by": 1, "was_cancelled": false, "updated_at": "...",
                      "result": [{"id": "r1", "from_name": "label", "to_name": "text", "type": "labels",
                                  "value": {"start": 0, "end": 4, "text": "Kari", "labels": ["PER"]}}]}],
     "predictions": [...]}

Per task one annotation is read: the latest one (``updated_at``, then ``created_at``, then ``id``) that
was not cancelled, or the one by ``data.label_studio.annotator`` (a user id, or an email where the export
names annotators by email). Its ``labels`` results become spans; predictions are never read (they are a
model's, not a person's). What cannot be taken as it is goes into one warning per file, with task ids and
offsets (never the text), and into ``loraner data inspect``'s output:

* tasks skipped: no usable annotation; a region whose offsets do not hold its ``value.text`` or fall
  outside the text; a region with an unknown label (not in ``data.label_studio.labels``), with several
  labels or none; a malformed region; no text;
* tasks kept, repaired: overlapping regions (the longer is kept, as for span files); whitespace at a
  region's edges trimmed (the model's words never include it); offsets counted in UTF-16 code units, as
  Label Studio before 1.6 wrote them after an emoji, converted to characters;
* results ignored: other types (choices, relations, text areas) and other ``Labels`` controls.

A task with an annotation but no regions is a text without entities, and is kept.
"""

from __future__ import annotations

import random
import re
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from loraner.data.jsonl import TAG_PREFIX, read_records
from loraner.data.paths import data_dir, find_split_file
from loraner.errors import ConfigError, DataError, DataWarning
from loraner.settings import DataConfig, LabelStudioOptions
from loraner.spans import resolve_overlaps
from loraner.types import Entity, Span, SpanExample, Splits, surrogate_problem

LABELS = "labels"  # the result type of a Labels control on a Text object
SUFFIXES = (".json", ".jsonl")
# The names Label Studio's "Named Entity Recognition" template gives its controls.
DEFAULT_FROM_NAME = "label"
DEFAULT_TO_NAME = "text"
DEFAULT_TEXT_FIELD = "text"
MAX_IDS_SHOWN = 10


# --------------------------------------------------------------------------- reading an export


@dataclass
class ExportReport:
    """What reading one export file kept, skipped and repaired: task ids per reason."""

    source: str
    tasks: int = 0
    examples: int = 0
    skipped: dict[str, list[Any]] = field(default_factory=dict)
    repaired: dict[str, list[Any]] = field(default_factory=dict)
    ignored: Counter[str] = field(default_factory=Counter)
    where: dict[str, str] = field(default_factory=dict)  # task id -> the region that made it skipped

    def skip(self, task: Any, reason: str, where: str = "") -> None:
        self.skipped.setdefault(reason, []).append(task)
        if where:
            self.where[str(task)] = where

    def repair(self, task: Any, what: str) -> None:
        found = self.repaired.setdefault(what, [])
        if not found or found[-1] != task:
            found.append(task)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tasks": self.tasks,
            "examples": self.examples,
            "skipped": {reason: ids for reason, ids in self.skipped.items()},
            "repaired": {what: ids for what, ids in self.repaired.items()},
            "ignored_results": dict(sorted(self.ignored.items())),
            "where": dict(self.where),
        }

    def message(self) -> str | None:
        parts = [
            f"{len(ids)} task(s) skipped, {reason}: {_ids(ids, self.where)}"
            for reason, ids in self.skipped.items()
        ]
        parts += [f"{len(ids)} task(s) repaired, {what}: {_ids(ids)}" for what, ids in self.repaired.items()]
        if self.ignored:
            parts.append(
                "results ignored: " + ", ".join(f"{n} {kind}" for kind, n in sorted(self.ignored.items()))
            )
        if not parts:
            return None
        return f"{self.source}: read {self.examples} of {self.tasks} tasks; " + "; ".join(parts)


def _ids(ids: Sequence[Any], where: Mapping[str, str] | None = None) -> str:
    where = where or {}
    shown = ", ".join(f"{i} ({where[str(i)]})" if str(i) in where else str(i) for i in ids[:MAX_IDS_SHOWN])
    return shown + (f" and {len(ids) - MAX_IDS_SHOWN} more" if len(ids) > MAX_IDS_SHOWN else "")


class _Skip(Exception):
    """This task cannot be used: ``reason`` (the same for every task it applies to) and ``where`` (the
    region, its offsets or label; never text)."""

    def __init__(self, reason: str, where: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.where = where


@dataclass(frozen=True)
class _Reading:
    options: LabelStudioOptions
    from_name: str | None
    report: ExportReport


def read_label_studio_file(
    path: str | Path, options: LabelStudioOptions | None = None
) -> tuple[list[SpanExample], ExportReport]:
    """One export file as span examples, with what was skipped and repaired (also warned once)."""
    options = options or LabelStudioOptions()
    path = Path(path)
    tasks = list(_tasks(path))
    report = ExportReport(str(path), tasks=len(tasks))
    reading = _Reading(options, _choose_from_name(tasks, options.from_name, str(path)), report)
    examples = []
    for index, task in tasks:
        task_id = task.get("id", index) if isinstance(task, dict) else index
        try:
            examples.append(_example(task, task_id, reading))
        except _Skip as skip:
            report.skip(task_id, skip.reason, skip.where)
    report.examples = len(examples)
    if not examples:
        reasons = "; ".join(f"{reason} ({len(ids)})" for reason, ids in report.skipped.items())
        raise DataError(f"no task could be read: {reasons or 'no tasks'}", source=str(path))
    message = report.message()
    if message:
        warnings.warn(
            DataWarning(message, {"source": str(path), "label_studio": report.to_dict()}), stacklevel=2
        )
    return examples, report


def _tasks(path: Path) -> Iterable[tuple[int, Any]]:
    for where, record in read_records(path):
        yield (where.record if where.record is not None else (where.line or 0)), record


def _choose_from_name(tasks: Sequence[tuple[int, Any]], chosen: str | None, source: str) -> str | None:
    """The Labels control to read: the chosen one (which must occur), else the only one there is."""
    names = Counter(
        item.get("from_name")
        for _, task in tasks
        if isinstance(task, dict)
        for annotation in _list(task.get("annotations"))
        if isinstance(annotation, dict)
        for item in _list(annotation.get("result"))
        if isinstance(item, dict) and item.get("type") == LABELS
    )
    if chosen is not None:
        if names and chosen not in names:
            raise ConfigError(
                f"data.label_studio.from_name {chosen!r} labels no region in {source}; its Labels controls: "
                f"{', '.join(sorted(map(str, names)))}"
            )
        return chosen
    if len(names) > 1:
        raise ConfigError(
            f"{source} has regions of several Labels controls ({', '.join(sorted(map(str, names)))}): "
            "choose one with data.label_studio.from_name"
        )
    return next(iter(names), None)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _example(task: Any, task_id: Any, reading: _Reading) -> SpanExample:
    if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
        raise _Skip("not a task (an object with 'data')")
    text = _text(task["data"], reading.options.text_field)
    annotation = _annotation(task, reading.options.annotator)
    spans: list[Span] = []
    for number, item in enumerate(_list(annotation.get("result"))):
        if not isinstance(item, dict):
            raise _Skip("a result that is not an object", f"result {number}")
        kind = item.get("type")
        if kind != LABELS or item.get("from_name") != reading.from_name:
            what = f"'{kind}'" if kind != LABELS else f"of control '{item.get('from_name')}'"
            reading.report.ignored[what] += 1
            continue
        span = _span(item, number, text, task_id, reading)
        if span is not None:
            spans.append(span)
    kept = resolve_overlaps(spans)
    if len(kept) != len(spans):
        reading.report.repair(task_id, "overlapping regions (the longer kept)")
    return SpanExample(text=text, spans=kept, id=str(task_id))


def _text(data: dict[str, Any], text_field: str | None) -> str:
    if text_field is None:
        strings = [key for key, value in data.items() if isinstance(value, str)]
        text_field = DEFAULT_TEXT_FIELD if DEFAULT_TEXT_FIELD in data or len(strings) != 1 else strings[0]
    text = data.get(text_field)
    if not isinstance(text, str):
        raise _Skip(f"no text in data.{text_field} (set data.label_studio.text_field)")
    problem = surrogate_problem(text)
    if problem:
        raise _Skip(f"the text {problem}")
    return text


def _annotation(task: dict[str, Any], annotator: int | str | None) -> dict[str, Any]:
    annotations = [
        a for a in _list(task.get("annotations")) if isinstance(a, dict) and not a.get("was_cancelled")
    ]
    if annotator is not None:
        annotations = [a for a in annotations if _by(a, annotator)]
    if not annotations:
        who = f" by annotator {annotator}" if annotator is not None else ""
        raise _Skip(f"no annotation{who} that was not cancelled")
    return max(annotations, key=_recency)


def _by(annotation: dict[str, Any], annotator: int | str) -> bool:
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        return annotator in (who.get("id"), who.get("email"))
    return who == annotator or (isinstance(annotator, str) and str(who) == annotator)


def _recency(annotation: dict[str, Any]) -> tuple[str, str, int]:
    number = annotation.get("id")
    return (
        str(annotation.get("updated_at") or annotation.get("created_at") or ""),
        str(annotation.get("created_at") or ""),
        number if isinstance(number, int) else 0,
    )


def _span(item: dict[str, Any], number: int, text: str, task_id: Any, reading: _Reading) -> Span | None:
    value = item.get("value")
    region = f"region {item.get('id', number)}"
    if not isinstance(value, dict):
        raise _Skip("a region without a value", region)
    start, end, labels = value.get("start"), value.get("end"), value.get("labels")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end)):
        raise _Skip("a region whose start or end is not an integer", region)
    if not isinstance(labels, list) or len(labels) != 1 or not isinstance(labels[0], str):
        raise _Skip("a region with several labels or none", region)
    label = labels[0]
    allowed = reading.options.labels
    if (
        (allowed is not None and label not in allowed)
        or not label.strip()
        or label == "O"
        or TAG_PREFIX.match(label)
    ):
        raise _Skip(
            "a region with an unknown label (data.label_studio.labels; labels are types, not tags)",
            f"{region}: {label!r}",
        )
    shown = value.get("text")
    found = _offsets(text, start, end, shown if isinstance(shown, str) else None)
    if found is None:
        raise _Skip("offsets that do not hold value.text", f"{region}: [{start}, {end})")
    if found != (start, end):
        reading.report.repair(task_id, "offsets in UTF-16 code units converted to characters")
    first, stop = found
    while first < stop and text[first].isspace():
        first += 1
    while stop > first and text[stop - 1].isspace():
        stop -= 1
    if (first, stop) != found:
        reading.report.repair(task_id, "whitespace at a region's edges trimmed")
    if first == stop:
        reading.report.repair(task_id, "regions of whitespace only dropped")
        return None
    return Span(first, stop, label)


def _offsets(text: str, start: int, end: int, shown: str | None) -> tuple[int, int] | None:
    """``(start, end)`` in characters: as given where they hold ``shown`` (or, without it, lie in the
    text), else read as UTF-16 code units where that holds it; None when neither does."""
    if 0 <= start < end <= len(text) and (shown is None or text[start:end] == shown):
        return start, end
    if shown is None or len(text.encode("utf-16-le")) == 2 * len(text):
        return None  # no astral characters: UTF-16 units are characters, nothing else to try
    converted = utf16_to_chars(text, start), utf16_to_chars(text, end)
    if None not in converted and text[converted[0] : converted[1]] == shown:  # type: ignore[misc]
        return converted  # type: ignore[return-value]
    return None


def utf16_to_chars(text: str, units: int) -> int | None:
    """The character offset of a UTF-16 code-unit offset, or None where it falls inside a character."""
    at = 0
    for index, char in enumerate(text):
        if at == units:
            return index
        at += 2 if ord(char) > 0xFFFF else 1
        if at > units:
            return None
    return len(text) if at == units else None


def is_label_studio_file(path: Path) -> bool:
    """Cheap sniff: a ``.json``/``.jsonl`` file whose first task has ``data`` and ``annotations`` or
    ``predictions``."""
    if path.suffix.lower() not in SUFFIXES or not path.is_file():
        return False
    with path.open(encoding="utf-8", errors="replace") as handle:
        head = handle.read(4096)
    return (
        head.lstrip()[:1] in ("[", "{")
        and '"data"' in head
        and re.search(r'"(annotations|predictions)"', head) is not None
    )


def read_label_studio(cfg: DataConfig) -> Splits:
    """The ``label-studio`` format: ``data.path`` is one export (split by ``data.label_studio.holdout``)
    or a directory with one export per split (``data.splits``)."""
    options = cfg.label_studio
    if cfg.path and not Path(cfg.path).expanduser().exists():
        raise ConfigError(
            f"data.path {cfg.path!r}: no such file or directory (an export, or a folder of them)"
        )
    if cfg.path and Path(cfg.path).expanduser().is_file():
        examples, _ = read_label_studio_file(Path(cfg.path).expanduser(), options)
        return holdout_splits(examples, options.holdout, cfg.seed)
    directory = data_dir(cfg)
    return {
        split: read_label_studio_file(find_split_file(directory, name, SUFFIXES), options)[0]
        for split, name in cfg.splits.items()
    }


def holdout_splits(examples: list[SpanExample], holdout: Mapping[str, float], seed: int) -> Splits:
    """``train`` and the held-out splits: a seeded share of the examples each (at least one example
    where there are enough; a split left empty is not made), every split in the export's order."""
    if "train" in holdout:
        raise ConfigError("data.label_studio.holdout names the held-out splits; 'train' is the rest")
    if any(not 0.0 <= share < 1.0 for share in holdout.values()) or sum(holdout.values()) >= 1.0:
        raise ConfigError(
            f"data.label_studio.holdout: each share in [0, 1), together below 1 (got {dict(holdout)})"
        )
    order = list(range(len(examples)))
    random.Random(f"{seed}:label-studio").shuffle(order)
    splits: Splits = {}
    at = 0
    for name, share in holdout.items():
        count = round(share * len(examples))
        if share and not count and len(examples) - at > 1:
            count = 1
        if count:
            splits[name] = [examples[i] for i in sorted(order[at : at + count])]
        at += count
    splits = {"train": [examples[i] for i in sorted(order[at:])], **splits}
    return splits


# --------------------------------------------------------------------------- writing tasks and predictions


@dataclass(frozen=True)
class LabelNames:
    """Where predictions go in a project: the ``Labels`` control (``from_name``), the ``Text`` object
    (``to_name``), the task data key of the text (``$text_field``), and the labels the control offers
    (None: any)."""

    from_name: str = DEFAULT_FROM_NAME
    to_name: str = DEFAULT_TO_NAME
    text_field: str = DEFAULT_TEXT_FIELD
    labels: frozenset[str] | None = None


def regions(entities: Sequence[Entity], names: LabelNames) -> list[dict[str, Any]]:
    """Entities as the result items of a prediction, each with its score; entities whose type the control
    does not offer are left out."""
    return [
        {
            "id": f"r{i}",
            "from_name": names.from_name,
            "to_name": names.to_name,
            "type": LABELS,
            "value": {"start": e.start, "end": e.end, "text": e.text, "labels": [e.type]},
            "score": round(float(e.score), 4),
        }
        for i, e in enumerate(entities)
        if names.labels is None or e.type in names.labels
    ]


def prediction(
    entities: Sequence[Entity], names: LabelNames, model_version: str, score: float | None = None
) -> dict[str, Any]:
    """One prediction of a task: its regions, the model that made it and a task-level ``score`` (Label
    Studio sorts and filters tasks by it; default: the lowest entity score, 1 without entities)."""
    result = regions(entities, names)
    if score is None:
        score = min((item["score"] for item in result), default=1.0)
    return {"model_version": model_version, "score": round(float(score), 4), "result": result}


def task(
    record: Mapping[str, Any], text: str, names: LabelNames, predicted: dict[str, Any]
) -> dict[str, Any]:
    """A task to import: the input record's fields as its data (the text under ``names.text_field``) and
    one prediction."""
    data = {key: value for key, value in record.items() if key != "text"}
    data[names.text_field] = text
    return {"data": data, "predictions": [predicted]}


def label_names(label_config: str) -> LabelNames:
    """The first ``Labels`` control on a ``Text`` object in a labelling config (XML), as
    :class:`LabelNames`. A config without one is a :class:`ConfigError` that says what is needed."""
    try:
        root = ElementTree.fromstring(label_config)
    except ElementTree.ParseError as exc:
        raise ConfigError(f"the labelling config is not valid XML: {exc}") from None
    texts = {
        node.get("name"): (node.get("value") or "").lstrip("$")
        for node in root.iter()
        if node.tag == "Text" and node.get("name")
    }
    for node in root.iter():
        if node.tag == "Labels" and node.get("toName") in texts and node.get("name"):
            to_name = str(node.get("toName"))
            offered = frozenset(str(label.get("value")) for label in node.iter("Label") if label.get("value"))
            return LabelNames(str(node.get("name")), to_name, texts[to_name] or DEFAULT_TEXT_FIELD, offered)
    raise ConfigError(
        'the labelling config has no <Labels name="..." toName="T"> for a <Text name="T" value="$field"/>: '
        "loraner pre-annotates text spans"
    )


def labelling_config(types: Sequence[str], names: LabelNames | None = None) -> str:
    """A labelling config (XML) for a model's entity types: Label Studio's NER template with these labels."""
    names = names or LabelNames()
    view = ElementTree.Element("View")
    labels = ElementTree.SubElement(view, "Labels", name=names.from_name, toName=names.to_name)
    for kind in types:
        ElementTree.SubElement(labels, "Label", value=kind)
    ElementTree.SubElement(view, "Text", name=names.to_name, value=f"${names.text_field}")
    ElementTree.indent(view)
    return ElementTree.tostring(view, encoding="unicode") + "\n"
