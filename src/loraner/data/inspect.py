"""Dataset summaries (``loraner data inspect PATH``) and path sniffing."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from loraner.data.conll import read_column_file
from loraner.data.jsonl import read_span_file
from loraner.data.labelstudio import is_label_studio_file, read_label_studio_file
from loraner.data.nordeid import is_nor_deid_file, read_nor_deid_file
from loraner.errors import DataError, DataWarning
from loraner.types import Example, Splits, WordExample

COLUMN_SUFFIXES = (".txt", ".conll", ".bio", ".iob", ".tsv")
SPAN_SUFFIXES = (".jsonl", ".json")


def inspect_splits(splits: Splits) -> dict[str, Any]:
    """Counts per split (examples, tokens or characters, entities, entities per type) and overall types.

    Word examples report ``tokens``; span examples report ``characters``. Entities are counted
    as IOB2 ``B-`` tags or spans.
    """
    per_split = {name: _split_stats(examples) for name, examples in splits.items()}
    totals: Counter[str] = Counter()
    for stats in per_split.values():
        totals.update(stats["entity_types"])
    return {"splits": per_split, "entity_types": dict(sorted(totals.items()))}


def inspect_path(path: str | Path) -> dict[str, Any]:
    """:func:`inspect_splits` of :func:`load_path`, with what the readers skipped or repaired (their
    warnings) under ``warnings``: each a ``message``, and the reader's details where it gives them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        splits = load_path(path)
    summary = inspect_splits(splits)
    notes = [w.message for w in caught if isinstance(w.message, UserWarning)]
    if notes:
        summary["warnings"] = [
            {"message": str(note), **(note.details if isinstance(note, DataWarning) else {})}
            for note in notes
        ]
    return summary


def _split_stats(examples: Sequence[Example]) -> dict[str, Any]:
    types: Counter[str] = Counter()
    tokens = characters = 0
    words = spans = 0
    for ex in examples:
        if isinstance(ex, WordExample):
            words += 1
            tokens += len(ex.tokens)
            types.update(t[2:] for t in ex.tags if t.startswith("B-"))
        else:
            spans += 1
            characters += len(ex.text)
            types.update(s.label for s in ex.spans)
    stats: dict[str, Any] = {"examples": len(examples), "kind": _kind(words, spans)}
    if words:
        stats["tokens"] = tokens
    if spans:
        stats["characters"] = characters
    stats["entities"] = sum(types.values())
    stats["entity_types"] = dict(sorted(types.items()))
    return stats


def _kind(words: int, spans: int) -> str:
    if words and spans:
        return "mixed"
    return "words" if words else "spans" if spans else "empty"


# First match wins: Nor-DeID files and Label Studio exports are JSON too, so they are tried before generic
# span files.
FileReader = Callable[[Path], list[Example]]
SNIFFERS: list[tuple[str, Callable[[Path], bool], FileReader]] = [
    ("Nor-DeID-SynthData .json", is_nor_deid_file, lambda p: list(read_nor_deid_file(p))),
    (
        "Label Studio export .json/.jsonl",
        is_label_studio_file,
        lambda p: list(read_label_studio_file(p)[0]),
    ),
    ("span .jsonl/.json", lambda p: p.suffix.lower() in SPAN_SUFFIXES, lambda p: list(read_span_file(p))),
    (
        f"column files ({' '.join(COLUMN_SUFFIXES)})",
        lambda p: p.suffix.lower() in COLUMN_SUFFIXES,
        lambda p: list(read_column_file(p)),
    ),
]


def _reader_for(path: Path) -> FileReader | None:
    return next((read for _, matches, read in SNIFFERS if matches(path)), None)


def _supported() -> str:
    return "; ".join(name for name, _, _ in SNIFFERS)


def load_path(path: str | Path) -> Splits:
    """Read a file (one split named after it) or a directory (one split per readable file).

    The reader is sniffed per file: Nor-DeID JSON, span JSONL/JSON, or column (CoNLL-style) text
    with the tag scheme detected.
    """
    path = Path(path)
    if path.is_file():
        read = _reader_for(path)
        if read is None:
            raise DataError(f"cannot tell the format; supported: {_supported()}", source=str(path))
        return {path.stem: read(path)}
    if not path.is_dir():
        raise DataError("no such file or directory", source=str(path))
    splits: Splits = {}
    for child in sorted(path.iterdir()):
        read = _reader_for(child) if child.is_file() else None
        if read is not None:
            splits[child.stem] = read(child)
    if not splits:
        raise DataError(f"no readable data files; supported: {_supported()}", source=str(path))
    return splits
