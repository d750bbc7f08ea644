"""Character-span files: JSONL (one record a line) or JSON (a list of records).

A record is ``{"text": str, "spans": [{"start": int, "end": int, "label": str}], "id"?: any}``.
Errors name the file and the JSONL line, or the record index for ``.json`` files.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loraner.data.paths import split_files
from loraner.data.spans import warn_dropped
from loraner.errors import DataError
from loraner.settings import DataConfig
from loraner.spans import resolve_overlaps
from loraner.types import Span, SpanExample, Splits

TAG_PREFIX = re.compile(r"^[BIESLU]-")  # B-PER is a tag; a span's label is the type (PER)
OVERLAP_RULE = "kept the longer span; on ties the earlier one"


@dataclass(frozen=True)
class Where:
    """Where a record came from: a JSONL line, or an index into a JSON list."""

    source: str
    line: int | None = None
    record: int | None = None

    def error(self, message: str) -> DataError:
        if self.record is not None:
            message = f"record {self.record}: {message}"
        return DataError(message, source=self.source, line=self.line)

    @property
    def default_id(self) -> str:
        return str(self.line if self.line is not None else self.record)


def read_span_file(path: str | Path) -> list[SpanExample]:
    """Read a ``.jsonl`` or ``.json`` span file. Overlapping spans are resolved and counted in one warning."""
    path = Path(path)
    examples: list[SpanExample] = []
    dropped = 0
    for where, record in read_records(path):
        example, n = parse_record(record, where)
        examples.append(example)
        dropped += n
    if not examples:
        raise DataError("no records (empty file)", source=str(path))
    warn_dropped(str(path), dropped, "overlapping or nested spans dropped", OVERLAP_RULE)
    return examples


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot read file: {exc.strerror}", source=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text: {exc.reason} at byte {exc.start}", source=str(path)) from exc


def read_records(path: Path) -> Iterator[tuple[Where, Any]]:
    """Each record of a ``.json`` file (a list, or one object) or a ``.jsonl`` file, with where it is."""
    text = _read_text(path)
    if path.suffix.lower() == ".json":
        yield from _json_records(text, str(path))
        return
    # JSON Lines ends a record at "\n" only: str.splitlines() would also cut at U+2028, U+2029, U+0085
    # (and \x1c-\x1e), which may stand raw inside a JSON string.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue  # blank lines (often a trailing one) are not records
        where = Where(str(path), line=number)
        try:
            yield where, json.loads(line)
        except json.JSONDecodeError as exc:
            raise where.error(f"not valid JSON: {exc.msg} (column {exc.colno})") from None
        except RecursionError:
            raise where.error(f"not valid JSON: nested too deeply (over {sys.getrecursionlimit()})") from None


def _json_records(text: str, source: str) -> Iterator[tuple[Where, Any]]:
    if not text.strip():
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"not valid JSON: {exc.msg} (column {exc.colno})", source=source, line=exc.lineno
        ) from None
    except RecursionError:
        raise DataError(
            f"not valid JSON: nested too deeply (over {sys.getrecursionlimit()})", source=source
        ) from None
    # A single object is accepted as a one-record file.
    records = data if isinstance(data, list) else [data]
    for index, record in enumerate(records):
        yield Where(source, record=index), record


def parse_record(record: Any, where: Where) -> tuple[SpanExample, int]:
    """Validate one record; return the example and how many overlapping spans were dropped."""
    if not isinstance(record, dict):
        raise where.error(f"expected a JSON object, got {type(record).__name__}")
    for key in ("text", "spans"):
        if key not in record:
            raise where.error(f"missing key {key!r}")
    text = record["text"]
    if not isinstance(text, str):
        raise where.error(f"'text' must be a string, got {type(text).__name__}")
    if not isinstance(record["spans"], list):
        raise where.error(f"'spans' must be a list, got {type(record['spans']).__name__}")
    spans = [_parse_span(raw, i, len(text), where) for i, raw in enumerate(record["spans"])]
    kept = resolve_overlaps(spans)
    dropped = len(spans) - len(kept)
    example_id = record.get("id")
    return SpanExample(
        text=text, spans=kept, id=str(example_id) if example_id is not None else where.default_id
    ), dropped


def _parse_span(raw: Any, index: int, length: int, where: Where) -> Span:
    name = f"span {index}"
    if not isinstance(raw, dict):
        raise where.error(f"{name}: expected an object with start, end, label")
    for key in ("start", "end", "label"):
        if key not in raw:
            raise where.error(f"{name}: missing key {key!r}")
    start, end, label = raw["start"], raw["end"], raw["label"]
    for key, value in (("start", start), ("end", end)):
        # bool is an int subclass; true/false as an offset is a bug in the producer.
        if not isinstance(value, int) or isinstance(value, bool):
            raise where.error(f"{name}: {key!r} must be an integer, got {value!r}")
    if not isinstance(label, str) or not label.strip():
        raise where.error(f"{name}: 'label' must be a non-empty string, got {label!r}")
    if label != label.strip():
        raise where.error(f"{name}: 'label' {label!r} has leading or trailing spaces")
    if label == "O" or TAG_PREFIX.match(label):
        raise where.error(
            f"{name}: 'label' {label!r} is a tag, not an entity type: spans carry the type alone "
            "(e.g. 'PER'), and a span is an entity, never 'O'"
        )
    if start >= end:
        raise where.error(f"{name}: start {start} must be below end {end}")
    if start < 0 or end > length:
        raise where.error(f"{name}: [{start}, {end}) is outside the text (length {length})")
    return Span(start, end, label)


def write_span_jsonl(path: str | Path, examples: Iterable[SpanExample]) -> Path:
    """Write span examples as JSONL (UTF-8, non-ASCII kept readable)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for ex in examples:
            record = {
                "id": ex.id,
                "text": ex.text,
                "spans": [{"start": s.start, "end": s.end, "label": s.label} for s in ex.spans],
            }
            handle.write(jsonl_line(record))
    return path


# Characters some line readers treat as line breaks: escaped, so a record stays on one line for every
# reader (``json.loads`` reads the escapes back to the same characters).
_LINE_BREAKS = {"\u2028": "\\u2028", "\u2029": "\\u2029", "\u0085": "\\u0085"}
_LINE_BREAK_RE = re.compile("[\u2028\u2029\u0085]")


def jsonl_line(record: Any) -> str:
    """One JSON Lines record: UTF-8 text kept readable, line-break characters escaped, ending in "\\n"."""
    text = json.dumps(record, ensure_ascii=False)
    return _LINE_BREAK_RE.sub(lambda m: _LINE_BREAKS[m.group()], text) + "\n"


def read_jsonl(cfg: DataConfig) -> Splits:
    """The ``jsonl`` format: one ``.jsonl`` or ``.json`` file per split under ``cfg.path``."""
    return {
        split: list(read_span_file(path)) for split, path in split_files(cfg, (".jsonl", ".json")).items()
    }
