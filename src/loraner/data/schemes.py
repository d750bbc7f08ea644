"""Tag-scheme normalisation: every reader turns IO, IOB1, IOB2 or BIOES tags into IOB2.

One small strategy per scheme decides, for each tag, whether it *starts* a new entity or
*continues* the open one. The conversion loop is shared, so the schemes differ only in the
prefixes they accept and in that decision.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Literal

import numpy as np

from loraner.errors import DataError

Scheme = Literal["IO", "IOB1", "IOB2", "BIOES"]
SCHEMES: tuple[Scheme, ...] = ("IO", "IOB1", "IOB2", "BIOES")

# A prefix is exactly one capital letter and a dash (or an underscore, as some published checkpoints
# write ``B_PER``): ``building-airport`` is an IO type name, not a prefix, while ``X-FOO`` is an
# (invalid) prefixed tag.
_PREFIXED = re.compile(r"^([A-Z])[-_](.+)$")
# L(ast)/U(nit) are BILOU's names for BIOES' E(nd)/S(ingle).
_PREFIX_ALIASES = {"L": "E", "U": "S"}
_KNOWN_PREFIXES = frozenset("BIESLU")


@dataclass(frozen=True)
class Tag:
    """A parsed tag: ``prefix`` is ``O`` for outside, ``""`` for an unprefixed IO label."""

    prefix: str
    type: str


OUTSIDE = Tag("O", "")


def parse_tag(tag: str, *, source: str | None = None, line: int | None = None) -> Tag:
    """Split ``B-PER`` into its prefix and type; ``person-actor`` is an unprefixed IO label."""
    tag = tag.strip()
    if tag == "O":
        return OUTSIDE
    if not tag:
        raise DataError("empty tag", source=source, line=line)
    match = _PREFIXED.match(tag)
    if match is None:
        return Tag("", tag)
    prefix, type_ = match.groups()
    if prefix not in _KNOWN_PREFIXES:
        raise DataError(
            f"invalid tag {tag!r}: prefix {prefix}- is none of B- I- E- S- L- U-", source=source, line=line
        )
    return Tag(_PREFIX_ALIASES.get(prefix, prefix), type_)


@dataclass(frozen=True)
class SchemeStrategy:
    """How one scheme marks entity boundaries."""

    name: Scheme
    prefixes: frozenset[str]  # prefixes (after L/U aliasing) this scheme may use; "" = unprefixed

    def starts(self, tag: Tag, open_type: str | None) -> bool:
        """True if ``tag`` begins a new entity given the type of the entity still open (if any)."""
        if tag.prefix in ("B", "S"):
            return True
        # I-, E- and unprefixed IO tags continue a same-typed open entity; otherwise they start
        # one (the IOB1 rule, also used leniently for BIOES).
        return open_type != tag.type

    def closes(self, tag: Tag) -> bool:
        """True if the entity ends at this tag, so a following I- must start a new one."""
        return tag.prefix in ("E", "S")


@dataclass(frozen=True)
class StrictIOB2(SchemeStrategy):
    """IOB2 proper: every entity starts with B-, so an I- that opens one is an error."""

    def starts(self, tag: Tag, open_type: str | None) -> bool:
        if tag.prefix == "I" and open_type != tag.type:
            raise ValueError(f"I-{tag.type} does not continue an entity (IOB2 entities start with B-)")
        return tag.prefix == "B"


STRATEGIES: dict[Scheme, SchemeStrategy] = {
    # IO: adjacent words with the same label are one entity; ``I-X`` is accepted as ``X``.
    "IO": SchemeStrategy("IO", frozenset({"", "I"})),
    "IOB1": SchemeStrategy("IOB1", frozenset({"B", "I"})),
    "IOB2": StrictIOB2("IOB2", frozenset({"B", "I"})),
    "BIOES": SchemeStrategy("BIOES", frozenset({"B", "I", "E", "S"})),
}


def get_strategy(scheme: str) -> SchemeStrategy:
    """The strategy for ``scheme`` (case-insensitive; ``BILOU``/``IOBES`` are BIOES)."""
    key = scheme.upper()
    key = {"BILOU": "BIOES", "IOBES": "BIOES", "BIO": "IOB2"}.get(key, key)
    for name, strategy in STRATEGIES.items():
        if name == key:
            return strategy
    raise DataError(f"unknown tag scheme {scheme!r}; supported: auto, {', '.join(SCHEMES)}")


def detect_scheme(
    sequences: Iterable[Sequence[str]],
    *,
    source: str | None = None,
    lines: Iterable[int | Sequence[int] | None] | None = None,
) -> Scheme:
    """Guess the scheme of tag sequences (one per sentence).

    E-/S-/L-/U- anywhere means BIOES; no prefixes at all means IO; B-/I- tags mean IOB2 unless
    some I- opens an entity (after ``O`` or another type), which only IOB1 allows. All ``O``
    (or no tags) is reported as IOB2, which needs no conversion. ``lines`` runs parallel to
    ``sequences`` (each item as ``to_iob2``'s ``line``) so an invalid tag's error names its line.
    """
    first: dict[str, tuple[str, int | None]] = {}  # prefix -> its first tag and line (for errors)
    i_opens = False
    locations = iter(lines) if lines is not None else repeat(None)
    for tags, where in zip(sequences, locations, strict=False):  # repeat() is endless
        previous = OUTSIDE
        for i, tag in enumerate(tags):
            parsed = parse_tag(tag, source=source, line=_line_of(where, i))
            first.setdefault(parsed.prefix, (tag, _line_of(where, i)))
            if parsed.prefix == "I" and (previous.type != parsed.type or previous.prefix in ("E", "S")):
                i_opens = True
            previous = parsed
    seen = set(first) - {"O"}
    if "" in seen and seen - {"", "I"}:
        plain, plain_line = first[""]
        prefix = sorted(seen - {"", "I"})[0]
        prefixed, prefixed_line = first[prefix]
        at = f" (line {plain_line})" if plain_line is not None else ""
        raise DataError(
            f"tag {prefixed!r} has a {prefix}- prefix but {plain!r}{at} has none: the file mixes unprefixed "
            "IO labels with B-/E-/S- prefixes; use one scheme",
            source=source,
            line=prefixed_line,
        )
    if seen & {"E", "S"}:
        return "BIOES"
    if "" in seen:
        return "IO"
    if seen == {"I"} or i_opens:
        return "IOB1"
    return "IOB2"


def to_iob2(
    tags: Sequence[str],
    scheme: str = "auto",
    *,
    source: str | None = None,
    line: int | Sequence[int] | None = None,
) -> list[str]:
    """Convert one sentence's ``tags`` from ``scheme`` (or ``"auto"``) to IOB2.

    ``line`` locates errors: one number for the whole sequence (a record), or one per tag (column
    files, where each tag sits on its own line). Errors are :class:`DataError` naming ``source``.
    """
    if scheme == "auto":
        scheme = detect_scheme([tags], source=source, lines=[line])
    strategy = get_strategy(scheme)
    out: list[str] = []
    open_type: str | None = None
    for i, raw in enumerate(tags):
        where = _line_of(line, i)
        tag = parse_tag(raw, source=source, line=where)
        if tag is OUTSIDE:
            out.append("O")
            open_type = None
            continue
        if tag.prefix not in strategy.prefixes:
            shown = f"{tag.prefix}-" if tag.prefix else "no prefix"
            raise DataError(
                f"tag {raw!r} ({shown}) is not valid in scheme {strategy.name}", source=source, line=where
            )
        try:
            begins = strategy.starts(tag, open_type)
        except ValueError as exc:
            raise DataError(f"tag {raw!r}: {exc}", source=source, line=where) from None
        out.append(f"{'B' if begins else 'I'}-{tag.type}")
        open_type = None if strategy.closes(tag) else tag.type
    return out


def spans_from_tags(tags: Sequence[Tag]) -> list[tuple[int, int, str]]:
    """Entities of one parsed tag sequence as ``(first, last + 1, type)`` position ranges.

    The one decoder of the project: gold IOB2 tags become spans with it, and so do a model's predicted
    labels (any scheme, through :func:`entity_runs` on arrays). It is lenient like seqeval's default
    mode: an ``I-`` (or unprefixed IO label) after ``O`` or after another type starts an entity instead
    of being dropped; ``E-``/``S-`` close one. On valid IOB2 this is exactly the strict reading.
    """
    codes = TagCodes.of(tags)
    firsts, stops = entity_runs(codes.prefixes, codes.types)
    return [
        (first, stop, codes.names[codes.types[first]])
        for first, stop in zip(firsts.tolist(), stops.tolist(), strict=True)
    ]


# Tag prefixes as numbers, for the array form of the decoder.
_PREFIX_CODES = {"O": 0, "B": 1, "I": 2, "E": 3, "S": 4, "": 5}
_OUTSIDE, _BEGIN, _END, _SINGLE = 0, 1, 3, 4


@dataclass(frozen=True)
class TagCodes:
    """A list of tags as arrays: each tag's prefix code and type number (``names[number]``; -1 for ``O``)."""

    prefixes: np.ndarray
    types: np.ndarray
    names: tuple[str, ...]

    @classmethod
    def of(cls, tags: Sequence[Tag]) -> TagCodes:
        names: dict[str, int] = {}
        types = [-1 if tag.prefix == "O" else names.setdefault(tag.type, len(names)) for tag in tags]
        prefixes = [_PREFIX_CODES[tag.prefix] for tag in tags]
        return cls(np.array(prefixes, dtype=np.int8), np.array(types, dtype=np.int64), tuple(names))


def entity_runs(
    prefixes: np.ndarray, types: np.ndarray, breaks: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The entities of tag sequences given as arrays (:class:`TagCodes` ``prefixes`` and ``types`` per
    position) as position ranges ``[firsts, stops)``, all at once: :func:`spans_from_tags`' rule.

    ``breaks`` marks the positions that nothing before them continues (where one of several sequences
    laid end to end begins, or a line does): an entity open there ends and a new one begins.
    """
    n = len(prefixes)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    outside = prefixes == _OUTSIDE
    # An entity is open after position i - 1 when it holds a tag that does not close (E-, S-).
    open_before = np.zeros(n, dtype=bool)
    open_before[1:] = ~outside[:-1] & (prefixes[:-1] != _END) & (prefixes[:-1] != _SINGLE)
    if breaks is not None:
        open_before &= ~breaks
    same_type = np.zeros(n, dtype=bool)
    same_type[1:] = types[1:] == types[:-1]
    continues = open_before & same_type & ~outside & (prefixes != _BEGIN) & (prefixes != _SINGLE)
    firsts = np.flatnonzero(~outside & ~continues)
    ends = np.append(np.flatnonzero(~continues), n)  # where a run of continuations stops
    return firsts, ends[np.searchsorted(ends, firsts, side="right")]


def _line_of(line: int | Sequence[int] | None, index: int) -> int | None:
    if line is None or isinstance(line, int):
        return line
    return line[index] if index < len(line) else None
