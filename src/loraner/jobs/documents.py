"""The documents of a batch job: one checked :class:`Document` per input row.

One reader and one check of a row for every engine (``loraner predict``/``deid`` in this process and on
Ray): a row that cannot be processed becomes a document with a ``problem`` (not valid JSON, no ``"text"``
string, a lone surrogate, ...) and a ``where`` that names it (``notes.jsonl:12``); the message never
holds the row's text. A file that cannot be read at all is an error at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from loraner.errors import DataError
from loraner.types import surrogate_problem

NO_TEXT = 'expected an object with a "text" string'


@dataclass(frozen=True)
class Document:
    """One input row. ``record`` is the row as read (``{}`` when it is not a JSON object), ``id`` the
    record's ``"id"`` or, without one, its line number (a ``.txt`` file: its stem); ``key`` is the
    ``"document_key"`` that keeps pseudonyms consistent across documents."""

    record: dict[str, Any] = field(default_factory=dict)
    text: str | None = None
    key: str | None = None
    id: Any = None
    where: str | None = None
    problem: str | None = None

    def failure(self, reason: str) -> str:
        """``reason`` with the row's place, as error rows and ``--strict`` report it."""
        return str(DataError(reason, source=self.where)) if self.where else reason

    @property
    def error(self) -> str | None:
        return self.failure(self.problem) if self.problem else None


def from_record(
    record: Any, *, keys: bool = False, default_id: Any = None, where: str | None = None
) -> Document:
    """A parsed row (a JSONL record, a Parquet row, a row of a Ray batch) as a document: the one check
    of a row. ``keys``: a ``"document_key"`` must be a string (de-identification uses it)."""
    if not isinstance(record, dict):
        return Document(id=default_id, where=where, problem=NO_TEXT)
    found = Document(record, id=record.get("id", default_id), where=where)
    text = record.get("text")
    if not isinstance(text, str):
        return _with(found, NO_TEXT)
    problem = surrogate_problem(text)
    if problem:
        return _with(found, f'"text" {problem}')
    key = record.get("document_key")
    if keys and key is not None and not isinstance(key, str):
        return _with(found, '"document_key" must be a string')
    return Document(record, text, key if isinstance(key, str) else None, found.id, where)


def _with(document: Document, problem: str) -> Document:
    return Document(document.record, id=document.id, where=document.where, problem=problem)


def parse_line(raw: bytes, number: int, source: str, *, keys: bool = False) -> Document | None:
    """Line ``number`` of the JSONL file ``source`` (its bytes, without or with the ending ``"\\n"``) as a
    document; None for a blank line, which is no row."""
    where = f"{source}:{number}"
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        reason = f"not UTF-8 text ({exc.reason} at byte {exc.start} of the line)"
        return Document(id=number, where=where, problem=reason)
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        return Document(id=number, where=where, problem=f"not valid JSON ({reason})")
    return from_record(record, keys=keys, default_id=number, where=where)


def read_documents(path: Path, *, keys: bool = False) -> Iterator[Document]:
    """Every row of ``path`` in order: a ``.txt`` file is one document (id: the file's stem), anything
    else JSON Lines. The file is opened here, so one that cannot be read fails before the first row."""
    if path.suffix.lower() == ".txt":
        text = _read_text(path)
        return iter([Document({"id": path.stem, "text": text}, text, id=path.stem)])
    try:
        handle = path.open("rb")  # lines end at "\n" only: U+2028 inside a JSON string is not a break
    except OSError as exc:
        raise DataError(f"cannot read: {exc.strerror}", source=str(path)) from exc
    return _jsonl_documents(handle, str(path), keys)


def _jsonl_documents(handle: IO[bytes], source: str, keys: bool) -> Iterator[Document]:
    with handle:
        for number, raw in enumerate(handle, start=1):
            document = parse_line(raw, number, source, keys=keys)
            if document is not None:
                yield document


def _read_text(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot read: {exc.strerror}", source=str(path)) from exc
    except UnicodeDecodeError:
        raise DataError("not UTF-8 text", source=str(path)) from None
    if not text.strip():
        raise DataError("the file is empty", source=str(path))
    return text


def check_documents(path: Path, *, keys: bool = False, strict: bool = False) -> int:
    """Read every row of ``path`` once, before any model loads: how many there are. With ``strict``, the
    first bad row is a :class:`DataError` naming it."""
    count = 0
    for document in read_documents(path, keys=keys):
        if strict and document.error:
            raise DataError(document.error)
        count += 1
    return count


def read_texts(path: Path) -> list[str]:
    """The texts of ``path``, every row required to be good (e.g. the sample of ``loraner export onnx``)."""
    check_documents(path, strict=True)
    return [document.text for document in read_documents(path) if document.text is not None]
