"""Pattern recognisers for recall (phone numbers, fødselsnummer, dates) and their fusion with model spans.

Recognisers return :class:`~loraner.types.Entity` objects, the scored span type (``Span`` has no score).
Scores say how sure a match is; :data:`VALIDATED_SCORE` and above counts as *validated*: an fnr whose two
control digits check out, or a phone number with a country prefix or a phone keyword just before it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from loraner.deid.config import RecognizerConfig
from loraner.deid.dates import MONTH_NAMES, parse_date
from loraner.fnr import valid_fnr
from loraner.spans import SpanLike, resolve_overlaps, span_score, span_type
from loraner.types import Entity

__all__ = [
    "VALIDATED_SCORE",
    "fuse_spans",
    "recognize",
    "recognize_dates",
    "recognize_fnr",
    "recognize_phones",
    "valid_fnr",
]

VALIDATED_SCORE = 0.9

# Not inside a longer token, nor glued to a number by a separator ("1.12345678", "12345678-9").
_BEFORE = r"(?<![\w+])(?<!\d[.,/-])"
_AFTER = r"(?!\w|[.,/-]\d)"


def _non_overlapping(found: list[Entity]) -> list[Entity]:
    """Several patterns can match the same region ("10 Sep 2019" and "Sep 2019"): keep the longest."""
    return [s for s in resolve_overlaps(found) if isinstance(s, Entity)]


# --- fødselsnummer -----------------------------------------------------------------------------------------

_FNR = re.compile(_BEFORE + r"\d{6} ?\d{5}" + _AFTER)


def recognize_fnr(text: str, label: str = "ID") -> list[Entity]:
    """11-digit national identity numbers (``DDMMYYIIIKK`` or ``DDMMYY IIIKK``) with both control digits
    valid; D-numbers included."""
    matches = (m for m in _FNR.finditer(text) if valid_fnr(m.group()))
    return [Entity(label, m.group(), m.start(), m.end(), 0.99) for m in matches]


# --- phone numbers -----------------------------------------------------------------------------------------

_NO_BODY = (
    r"[2-9]\d{2}[ -]?\d{2}[ -]?\d{3}"  # 8 digits, 3-2-3 (or no grouping)
    r"|[2-9]\d(?P<s>[ .-])\d{2}(?P=s)\d{2}(?P=s)\d{2}"  # 2-2-2-2
    r"|[2-9]\d{3}[ -]\d{4}"  # 4-4
)
_NO_PHONE = re.compile(_BEFORE + rf"(?P<cc>\(?(?:\+|00) ?47\)?[ -]?)?(?:{_NO_BODY})" + _AFTER)
_INTL_PHONE = re.compile(
    r"(?<![\w+])(?P<cc>(?:\+|\b00)(?!47)[1-9]\d{0,2})[ -]?(?:\(\d{1,4}\)[ -]?)?\d{1,4}(?:[ .-]?\d{1,4}){1,5}"
    + _AFTER
)
_US_PHONE = re.compile(_BEFORE + r"(?:\(\d{3}\) ?|\d{3}[-.])\d{3}[-.]\d{4}" + _AFTER)
_PHONE_CONTEXT = re.compile(
    r"(?:tlf|telefon\w*|mob(?:il)?\w*|tel|phone|cell|fax|ring\w*|nr)\W{0,4}$", re.IGNORECASE
)


def _phone_score(text: str, m: re.Match[str], base: float) -> float:
    if "cc" in m.re.groupindex and m.group("cc"):
        return max(base, 0.95)
    if _PHONE_CONTEXT.search(text[max(0, m.start() - 20) : m.start()]):
        return max(base, 0.92)
    return base


def recognize_phones(text: str, label: str = "PHONE") -> list[Entity]:
    """Norwegian 8-digit numbers (``12345678``, ``123 45 678``, ``12 34 56 78``, ``1234 5678``, with
    ``+47``/``0047``), international ``+CC …`` numbers, and US ``(555) 123-4567``."""
    found: list[Entity] = []
    for m in _NO_PHONE.finditer(text):
        # A bare, ungrouped 8-digit run is as likely an order number or a date (20091963) as a phone.
        base = 0.5 if m.group().isdigit() else 0.75
        found.append(Entity(label, m.group(), m.start(), m.end(), _phone_score(text, m, base)))
    for m in _INTL_PHONE.finditer(text):
        digits = sum(c.isdigit() for c in m.group())
        if 8 <= digits <= 15:
            found.append(Entity(label, m.group(), m.start(), m.end(), _phone_score(text, m, 0.9)))
    for m in _US_PHONE.finditer(text):
        found.append(Entity(label, m.group(), m.start(), m.end(), _phone_score(text, m, 0.7)))
    return _non_overlapping(found)


# --- dates -------------------------------------------------------------------------------------------------

_MON = "(?:" + "|".join(re.escape(n) for n in MONTH_NAMES) + r")(?![^\W\d_])"
_SUF = r"(?:st|nd|rd|th)?"
_DATE_PATTERNS: tuple[tuple[re.Pattern[str], float], ...] = tuple(
    (re.compile(rx, re.IGNORECASE), score)
    for rx, score in (
        (_BEFORE + r"\d{4}([-./])\d{1,2}\1\d{1,2}" + _AFTER, 0.9),
        (_BEFORE + r"\d{1,2}([-./])\d{1,2}\1\d{4}" + _AFTER, 0.9),
        (_BEFORE + r"\d{1,2}([./])\d{1,2}\1\d{2}" + _AFTER, 0.75),
        (_BEFORE + rf"\d{{1,2}}{_SUF}\.? ?(?:of )?{_MON}(?:\.?,? \d{{4}}(?!\d))?", 0.95),
        (r"(?<![^\W\d_])" + _MON + rf"\.? \d{{1,2}}(?!\d){_SUF}(?:\.?,? \d{{4}}(?!\d))?", 0.95),
        (r"(?<![^\W\d_])" + _MON + r"\.?,? \d{4}(?!\d)", 0.9),
    )
)


def recognize_dates(text: str, label: str = "DATE") -> list[Entity]:
    """Numeric (``10.09.1963``, ``10/09/63``, ``1963-09-10``) and month-name dates in Norwegian and English
    (``10. september 1963``, ``September 10, 1963``, ``10 Sep 2019``, ``mars 2001``). Every match must
    parse as a real calendar date."""
    found: list[Entity] = []
    for pattern, score in _DATE_PATTERNS:
        for m in pattern.finditer(text):
            if parse_date(m.group()) is not None or parse_date(m.group(), day_first=False) is not None:
                found.append(Entity(label, m.group(), m.start(), m.end(), score))
    return _non_overlapping(found)


def recognize(text: str, config: RecognizerConfig | None = None) -> list[Entity]:
    """All enabled recognisers, overlaps among them resolved (longer wins, then higher score).

    ``config.enabled`` is the caller's switch for whether to recognise at all; this function honours only
    the per-recogniser flags so it can be called directly.
    """
    cfg = config or RecognizerConfig()
    runners: list[tuple[bool, Callable[[], list[Entity]]]] = [
        (cfg.fnr, lambda: recognize_fnr(text, cfg.labels["fnr"])),
        (cfg.phone, lambda: recognize_phones(text, cfg.labels["phone"])),
        (cfg.date, lambda: recognize_dates(text, cfg.labels["date"])),
    ]
    found: list[Entity] = []
    for enabled, run in runners:
        if enabled:
            found += run()
    return _non_overlapping(found)


# --- fusion ------------------------------------------------------------------------------------------------


@dataclass
class _Cand:
    start: int
    end: int
    type: str
    score: float
    text: str | None


def _cand(span: SpanLike) -> _Cand:
    text = span.text if isinstance(span, Entity) else None
    return _Cand(span.start, span.end, span_type(span), span_score(span), text)


def _union_text(a: _Cand, b: _Cand) -> str | None:
    """Text of the union of two overlapping candidates, rebuilt from their own texts."""
    if a.text is None or b.text is None:
        return None
    first, second = (a, b) if a.start <= b.start else (b, a)
    if second.end <= first.end:
        return first.text
    return first.text + second.text[first.end - second.start :]


def _merge(into: _Cand, other: _Cand) -> _Cand:
    return _Cand(
        min(into.start, other.start), max(into.end, other.end), into.type, max(into.score, other.score),
        _union_text(into, other),
    )  # fmt: skip


def _validated(p: _Cand) -> bool:
    return p.type in ("ID", "PHONE") and p.score >= VALIDATED_SCORE


def _place(current: list[_Cand], p: _Cand, validated: Callable[[_Cand], bool]) -> list[_Cand]:
    """``current`` with pattern candidate ``p`` fused in (or unchanged when a model span blocks it)."""
    hits = [c for c in current if c.start < p.end and p.start < c.end]
    for c in hits:
        same = c.type == p.type
        overrides = validated(p) and p.start <= c.start and c.end <= p.end
        if not (same or overrides):
            return current  # a model span of another type wins
    merged = p
    for c in hits:
        if c.type == p.type:
            merged = _merge(merged, c)
    return [c for c in current if all(c is not h for h in hits)] + [merged]


def fuse_spans(
    model_spans: Sequence[SpanLike],
    pattern_spans: Iterable[SpanLike],
    *,
    text: str | None = None,
    validated: Callable[[Entity], bool] | None = None,
) -> list[Entity]:
    """Union of model and pattern spans, without overlaps, sorted by start.

    Rule, for each pattern span against the (already non-overlapping) model spans it overlaps:

    - no overlap → added (that is the recall gain);
    - same type → merged into one span covering their union (score = max);
    - different type → the model span is kept and the pattern span dropped, **unless** the pattern span is
      a validated ID/PHONE (type ``ID`` or ``PHONE``, score >= :data:`VALIDATED_SCORE`) that fully contains
      the model span: then the pattern span replaces it. A pattern span must win against every model span
      it overlaps, or it is dropped entirely.

    Overlaps within each input are resolved first (longer, then higher score). Output entities take their
    text from ``text`` when given, else from the inputs' own texts (which needs ``Entity`` inputs).
    ``validated`` overrides the validated-ID/PHONE test (e.g. for other label names).
    """
    check = _validated
    if validated is not None:
        user_check = validated
        check = lambda c: user_check(Entity(c.type, c.text or "", c.start, c.end, c.score))  # noqa: E731
    current = [_cand(s) for s in resolve_overlaps(model_spans)]
    for p in resolve_overlaps(pattern_spans):
        current = _place(current, _cand(p), check)
    out = []
    for c in sorted(current, key=lambda c: c.start):
        span_text = text[c.start : c.end] if text is not None else c.text
        if span_text is None:
            raise TypeError("fuse_spans: pass text= when the inputs are Span objects (they carry no text)")
        out.append(Entity(c.type, span_text, c.start, c.end, c.score))
    return out
