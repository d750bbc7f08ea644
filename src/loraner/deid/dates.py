"""Parse written dates (Norwegian and English) and shift them while keeping the written format.

The parser remembers where each component (day, month, month name, year, ordinal suffix) sits in the
string; :func:`shift_date_text` rewrites only those components, so separators, padding, capitalisation,
abbreviation and two- vs four-digit years survive: ``10. september 1963`` shifted by 30 days becomes
``10. oktober 1963``, ``Sep 10, 1963`` becomes ``Oct 10, 1963``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

LANGS = ("nb", "en")

_FULL = {
    "nb": (
        "januar", "februar", "mars", "april", "mai", "juni",
        "juli", "august", "september", "oktober", "november", "desember",
    ),
    "en": (
        "january", "february", "march", "april", "may", "june",
        "july", "august", "september", "october", "november", "december",
    ),
}  # fmt: skip
_ABBR = {
    "nb": ("jan", "feb", "mar", "apr", "mai", "jun", "jul", "aug", "sep", "okt", "nov", "des"),
    "en": ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
}
# Spellings that are read but never written: ``sept`` is common in both languages.
_EXTRA_ABBR = {"nb": {"sept": 9}, "en": {"sept": 9}}


@dataclass(frozen=True)
class MonthToken:
    lang: str
    month: int
    abbreviated: bool


def _month_index() -> dict[str, list[MonthToken]]:
    index: dict[str, list[MonthToken]] = {}
    for lang in LANGS:
        for i, name in enumerate(_FULL[lang], start=1):
            index.setdefault(name, []).append(MonthToken(lang, i, False))
        for i, name in enumerate(_ABBR[lang], start=1):
            if name != _FULL[lang][i - 1]:  # "mai"/"may" are already full names
                index.setdefault(name, []).append(MonthToken(lang, i, True))
        for name, month in _EXTRA_ABBR[lang].items():
            index.setdefault(name, []).append(MonthToken(lang, month, True))
    return index


MONTH_INDEX = _month_index()
# Longest first so a regex alternation prefers "september" over "sep".
MONTH_NAMES = sorted(MONTH_INDEX, key=len, reverse=True)

_SUF = r"(?P<suf>st|nd|rd|th)?"
_MON = r"(?P<mon>[^\W\d_]{3,})"
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(rx, re.IGNORECASE))
    for name, rx in (
        ("ymd", r"(?P<y>\d{4})(?P<s>[-./])(?P<m>\d{1,2})(?P=s)(?P<d>\d{1,2})"),
        ("num", r"(?P<a>\d{1,2})(?P<s>[-./])(?P<b>\d{1,2})(?P=s)(?P<y>\d{4}|\d{2})"),
        ("dmon", rf"(?P<d>\d{{1,2}}){_SUF}(?P<dot>\.)?\s*(?:of\s+)?{_MON}\.?(?:,?\s*(?P<y>\d{{4}}))?"),
        ("mond", rf"{_MON}\.?\s*(?P<d>\d{{1,2}}){_SUF}\.?(?:,?\s*(?P<y>\d{{4}}))?"),
        ("mony", rf"{_MON}\.?,?\s*(?P<y>\d{{4}})"),
        ("my", r"(?P<m>\d{1,2})(?P<s>[-./])(?P<y>\d{4})"),
        ("dm", r"(?P<a>\d{1,2})(?P<s>[./])(?P<b>\d{1,2})\.?"),
        ("y", r"(?P<y>\d{4})"),
    )
)
# Stand-ins for components the text does not show; 2000 is a leap year so "29. februar" parses.
_REF_YEAR, _REF_DAY, _REF_MONTH = 2000, 15, 7


@dataclass(frozen=True)
class ParsedDate:
    """A recognised date: its value (missing parts filled with stand-ins) and where each part is written."""

    value: date
    layout: str
    match: re.Match[str]
    day_group: str | None
    month_group: str | None
    lang: str
    month_token: MonthToken | None
    pad: bool


def _year(text: str) -> int:
    if len(text) == 4:
        return int(text)
    # Two-digit years: clinical notes mention past dates far more than future ones.
    yy = int(text)
    return 2000 + yy if yy <= date.today().year % 100 else 1900 + yy


def _pick_lang(token: str, layout: str, match: re.Match[str], default: str) -> MonthToken | None:
    options = MONTH_INDEX.get(token.lower())
    if not options:
        return None
    langs = {o.lang for o in options}
    if len(langs) == 1:
        lang = next(iter(langs))
    elif layout == "mond":  # "September 10" is the English order
        lang = "en"
    elif layout == "dmon" and match.group("dot"):  # "10. september" is the Norwegian order
        lang = "nb"
    else:
        lang = default
    return next(o for o in options if o.lang == lang)


def _numeric_pad(*parts: str) -> bool:
    # A leading zero anywhere means zero-padded; two-digit parts without one (10.11.) are ambiguous and
    # padded is the common style; a one-digit part means unpadded.
    if any(len(p) == 2 and p[0] == "0" for p in parts):
        return True
    return all(len(p) == 2 for p in parts)


def _roles(layout: str, m: re.Match[str], day_first: bool) -> tuple[str | None, str | None]:
    """Which regex groups hold the day and the numeric month."""
    if layout in ("num", "dm"):
        a, b = int(m.group("a")), int(m.group("b"))
        if a > 12 >= b:
            day_first = True
        elif b > 12 >= a:
            day_first = False
        return ("a", "b") if day_first else ("b", "a")
    if layout == "ymd":
        return "d", "m"
    if layout == "my":
        return None, "m"
    if layout in ("dmon", "mond"):
        return "d", None
    return None, None


def parse_date(text: str, *, lang: str = "nb", day_first: bool = True) -> ParsedDate | None:
    """Parse a whole string as one date (``None`` if it is not one we can rewrite faithfully).

    ``lang`` breaks ties for month names both languages share ("september", "mar"); ``day_first`` breaks
    ties for numeric dates like ``10/09/1963`` (a part above 12 decides by itself).
    """
    for layout, pattern in _PATTERNS:
        m = pattern.fullmatch(text)
        if m is None:
            continue
        parsed = _build(layout, m, lang, day_first)
        if parsed is not None:
            return parsed
    return None


def _build(layout: str, m: re.Match[str], lang: str, day_first: bool) -> ParsedDate | None:
    groups = m.groupdict()
    token = None
    if groups.get("mon") is not None:
        token = _pick_lang(groups["mon"], layout, m, lang)
        if token is None:
            return None
    day_group, month_group = _roles(layout, m, day_first)
    day = int(m.group(day_group)) if day_group else _REF_DAY
    if token is not None:
        month = token.month
    elif month_group:
        month = int(m.group(month_group))
    else:
        month = _REF_MONTH
    year = _year(groups["y"]) if groups.get("y") else _REF_YEAR
    try:
        value = date(year, month, day)
    except ValueError:
        return None
    numeric = [m.group(g) for g in (day_group, month_group) if g]
    if token is not None:
        pad = bool(day_group) and m.group(day_group).startswith("0")
    else:
        pad = _numeric_pad(*numeric) if numeric else False
    return ParsedDate(value, layout, m, day_group, month_group, token.lang if token else lang, token, pad)


def _like_case(template: str, word: str) -> str:
    if len(template) > 1 and template.isupper():
        return word.upper()
    if template[:1].isupper():
        return word.capitalize()
    return word.lower()


def _ordinal(day: int) -> str:
    if 11 <= day % 100 <= 13:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


def render_shifted(parsed: ParsedDate, days: int) -> str:
    """The matched string with every written component replaced by that of ``value + days``."""
    m = parsed.match
    new = parsed.value + timedelta(days=days)
    edits: dict[str, str] = {}
    if m.groupdict().get("y"):
        edits["y"] = str(new.year) if len(m.group("y")) == 4 else f"{new.year % 100:02d}"
    if parsed.day_group:
        edits[parsed.day_group] = f"{new.day:02d}" if parsed.pad else str(new.day)
    if parsed.month_group:
        edits[parsed.month_group] = f"{new.month:02d}" if parsed.pad else str(new.month)
    if parsed.month_token is not None:
        tok = parsed.month_token
        names = _ABBR if tok.abbreviated else _FULL
        edits["mon"] = _like_case(m.group("mon"), names[parsed.lang][new.month - 1])
    if m.groupdict().get("suf"):
        edits["suf"] = _like_case(m.group("suf"), _ordinal(new.day))
    out = m.string
    # Right to left so earlier offsets stay valid while later parts change length.
    for group in sorted(edits, key=m.start, reverse=True):
        out = out[: m.start(group)] + edits[group] + out[m.end(group) :]
    return out


def shift_date_text(text: str, days: int, *, lang: str = "nb", day_first: bool = True) -> str | None:
    """``text`` shifted by ``days`` in its own written format, or ``None`` when it cannot be parsed.

    Surrounding whitespace is kept as is.
    """
    core = text.strip()
    parsed = parse_date(core, lang=lang, day_first=day_first)
    if parsed is None:
        return None
    try:
        shifted = render_shifted(parsed, days)
    except OverflowError:  # shifted outside year 1..9999
        return None
    lead = text[: len(text) - len(text.lstrip())]
    trail = text[len(text.rstrip()) :]
    return lead + shifted + trail
