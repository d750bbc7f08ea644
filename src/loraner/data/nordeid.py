"""Nor-DeID-SynthData: synthetic Norwegian clinical notes with inline PHI tags.

A file is one JSON object with ``parameters``, ``scenarios`` (structured records), ``prompts``,
``results`` (notes with tags such as ``<First_Name>Anders</First_Name>``) and ``cleaned_results``.

Two views:

* ``notes``: each ``results[i]`` with its tags parsed into clean text plus character spans.
* ``structured``: each ``scenarios[i]`` rendered as ``key: value`` lines, spans on the PHI values.

The tags were written by an LLM, so parsing is forgiving and every repair is counted in one
warning per file:

* nested or overlapping spans (mostly a Location inside a Date): the outer (longer) span is kept;
* tags with an unknown name (``<br>``, ``<Utskrivningsnotat>``, typos such as ``<Firt_Name>``) are
  markup: the tag is removed, the text around and inside it is kept;
* unbalanced known tags (an open tag never closed, a close tag never opened) are removed the same way;
* whitespace just inside a tag is left out of the span, and spans left empty are dropped.

Tag names match case-insensitively (``<health_Care_Unit>``); a tag may end with ``>``, ``⟩`` or
run straight into the next tag (``</Location</Date>``), and extra ``<``/``[`` before a tag
(``<<First_Name>``) belong to the tag.
"""

from __future__ import annotations

import json
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from loraner.data.paths import split_files
from loraner.errors import ConfigError, DataError
from loraner.settings import DataConfig
from loraner.spans import resolve_overlaps
from loraner.types import Span, SpanExample, Splits

TAG_LABELS: dict[str, str] = {
    "First_Name": "PATIENT",
    "Last_Name": "PATIENT",
    "Social_Security_Number": "ID",
    "Location": "LOC",
    "Health_Care_Unit": "LOC",
    "Date": "DATE",
    "Age": "AGE",
    "Phone_Number": "PHONE",
}
_LABEL_BY_LOWER = {name.lower(): label for name, label in TAG_LABELS.items()}

# Scenario fields that hold PHI, and the label of each (the structured view's spans).
SCENARIO_LABELS: dict[str, str] = {
    "givenName": "PATIENT",
    "familyName": "PATIENT",
    "age": "AGE",
    "phoneNumber": "PHONE",
    "city": "LOC",
    "healthCareUnit": "LOC",
    "birthDate": "DATE",
    "admissionDate": "DATE",
    "socialSecurityNumber": "ID",
}
# Run metadata, not part of the record a clinician would see.
_SCENARIO_SKIP = frozenset({"locale"})

DEFAULT_SPLITS = {"train": "training.json", "validation": "validation.json", "test": "holdout.json"}
REQUIRED_KEYS = ("scenarios", "results")

# A tag-shaped token: optional extra "<"/"[", optional "/", a name, and ">" or "⟩" or the next "<".
_TAG = re.compile(r"<[<\[]*(?P<close>/\s*)?(?P<name>[^\W\d]\w*)\s*(?:>|⟩|(?=<))")


class Repair(Enum):
    """What parsing may have to fix in a note, and what the file's warning says of it."""

    NESTED = "nested/overlapping spans dropped (kept the outer span)"
    UNKNOWN_TAG = "unknown tags stripped (text kept)"
    UNBALANCED_TAG = "unbalanced tags stripped (text kept)"
    EMPTY_SPAN = "empty spans dropped"


class Repairs(Counter[Repair]):
    """What parsing had to fix, counted by kind; ``update`` sums a file's notes."""

    def message(self) -> str:
        return "; ".join(f"{self[kind]} {kind.value}" for kind in Repair if self[kind])


@dataclass
class _Open:
    label: str
    name: str
    start: int
    order: int


@dataclass
class _Parse:
    pieces: list[str] = field(default_factory=list)
    length: int = 0
    stack: list[_Open] = field(default_factory=list)
    spans: list[tuple[int, Span]] = field(default_factory=list)  # (open order, span)
    opened: int = 0
    repairs: Repairs = field(default_factory=Repairs)

    def text(self, piece: str) -> None:
        self.pieces.append(piece)
        self.length += len(piece)

    def tag(self, name: str, closing: bool) -> None:
        label = _LABEL_BY_LOWER.get(name.lower())
        if label is None:
            self.repairs[Repair.UNKNOWN_TAG] += 1
        elif not closing:
            self.stack.append(_Open(label, name.lower(), self.length, self.opened))
            self.opened += 1
        else:
            self._close(name.lower())

    def _close(self, name: str) -> None:
        match = next((i for i in range(len(self.stack) - 1, -1, -1) if self.stack[i].name == name), None)
        if match is None:
            self.repairs[Repair.UNBALANCED_TAG] += 1
            return
        # Tags opened inside this one and never closed are unbalanced: drop them.
        self.repairs[Repair.UNBALANCED_TAG] += len(self.stack) - match - 1
        opened = self.stack[match]
        del self.stack[match:]
        self.spans.append((opened.order, Span(opened.start, self.length, opened.label)))


def parse_tagged_text(raw: str) -> tuple[str, list[Span], Repairs]:
    """Clean text and sorted, non-overlapping spans from a note with inline PHI tags."""
    state = _Parse()
    last = 0
    for match in _TAG.finditer(raw):
        state.text(raw[last : match.start()])
        state.tag(match["name"], closing=match["close"] is not None)
        last = match.end()
    state.text(raw[last:])
    state.repairs[Repair.UNBALANCED_TAG] += len(state.stack)
    text = "".join(state.pieces)
    trimmed = []
    for _order, span in sorted(state.spans, key=lambda item: item[0]):
        tight = _trim(text, span)
        if tight is None:
            state.repairs[Repair.EMPTY_SPAN] += 1
        else:
            trimmed.append(tight)
    # Sorted by open order, so on equal extents the outer tag (opened first) wins the tie.
    kept = resolve_overlaps(trimmed)
    state.repairs[Repair.NESTED] = len(trimmed) - len(kept)
    return text, kept, state.repairs


def _trim(text: str, span: Span) -> Span | None:
    start, end = span.start, span.end
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Span(start, end, span.label) if start < end else None


def render_scenario(scenario: dict[str, Any]) -> tuple[str, list[Span]]:
    """The structured view: ``key: value`` lines, spans on the PHI values; lists joined by ", "."""
    lines: list[str] = []
    spans: list[Span] = []
    offset = 0
    for key, value in scenario.items():
        if key in _SCENARIO_SKIP or value is None:
            continue
        shown = ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
        prefix = f"{key}: "
        label = SCENARIO_LABELS.get(key)
        if label and shown.strip():
            span = _trim(shown, Span(0, len(shown), label))
            if span is not None:
                base = offset + len(prefix)
                spans.append(Span(base + span.start, base + span.end, label))
        line = prefix + shown
        lines.append(line)
        offset += len(line) + 1  # the newline
    return "\n".join(lines), spans


def load_nor_deid_json(path: str | Path) -> dict[str, Any]:
    """The file's top-level object, checked for the keys the views need."""
    source = str(path)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(f"cannot read file: {exc.strerror}", source=source) from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text: {exc.reason} at byte {exc.start}", source=source) from None
    except json.JSONDecodeError as exc:
        raise DataError(
            f"not valid JSON: {exc.msg} (column {exc.colno})", source=source, line=exc.lineno
        ) from None
    except RecursionError:
        raise DataError("not valid JSON: nested too deeply", source=source) from None
    if not isinstance(data, dict):
        raise DataError("expected one JSON object with 'scenarios' and 'results'", source=source)
    for key in REQUIRED_KEYS:
        if not isinstance(data.get(key), list):
            raise DataError(f"missing list {key!r} (is this a Nor-DeID-SynthData file?)", source=source)
    if not data["results"]:
        raise DataError("no records (empty 'results')", source=source)
    return data


def read_nor_deid_file(path: str | Path, view: str = "notes") -> list[SpanExample]:
    """One Nor-DeID file as span examples; repairs are summed into one warning for the file."""
    data = load_nor_deid_json(path)
    source, stem = str(path), Path(path).stem
    if view == "structured":
        return [_structured(s, i, source, stem) for i, s in enumerate(data["scenarios"])]
    if view != "notes":
        raise ConfigError(f"data.view must be 'notes' or 'structured', got {view!r}")
    repairs = Repairs()
    examples = []
    for i, raw in enumerate(data["results"]):
        if not isinstance(raw, str):
            raise DataError(
                f"record {i}: results[{i}] must be a string, got {type(raw).__name__}", source=source
            )
        text, spans, fixed = parse_tagged_text(raw)
        repairs.update(fixed)
        examples.append(SpanExample(text=text, spans=spans, id=f"{stem}-{i}"))
    if repairs.message():
        warnings.warn(f"{source}: {repairs.message()}", UserWarning, stacklevel=2)
    return examples


def _structured(scenario: Any, index: int, source: str, stem: str) -> SpanExample:
    if not isinstance(scenario, dict):
        raise DataError(f"record {index}: scenarios[{index}] must be an object", source=source)
    text, spans = render_scenario(scenario)
    return SpanExample(text=text, spans=spans, id=f"{stem}-{index}")


def is_nor_deid_file(path: Path) -> bool:
    """Cheap sniff: a ``.json`` whose top-level object starts with Nor-DeID's keys."""
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    with path.open(encoding="utf-8", errors="replace") as handle:
        head = handle.read(4096)
    return head.lstrip().startswith("{") and ('"scenarios"' in head or '"parameters"' in head)


def read_nor_deid(cfg: DataConfig) -> Splits:
    """The ``nor-deid`` format. With the generic splits mapping, uses training/validation/holdout.json."""
    return {
        split: list(read_nor_deid_file(path, cfg.view))
        for split, path in split_files(cfg, (".json",), defaults=DEFAULT_SPLITS).items()
    }
