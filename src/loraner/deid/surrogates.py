"""Realistic surrogates for pseudonymisation, and the memory that keeps them consistent.

:class:`SurrogateState` is the per-document (or per-batch) memory: the same normalised original always
gets the same surrogate, two different originals never share one, and all dates share one offset. In keyed
mode every random choice is seeded with an HMAC of the original under the secret, so the mapping is
deterministic across documents and processes without storing it (and cannot be rebuilt without the secret).
"""

from __future__ import annotations

import hashlib
import hmac
import random
import re
import string
import threading
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING

from loraner.deid.dates import shift_date_text
from loraner.fnr import generate_fnr, is_d_number

if TYPE_CHECKING:
    from faker import Faker

# Faker names Norwegian Bokmål "no_NO"; the config speaks BCP-47-ish "nb_NO".
FAKER_LOCALES = {"nb_NO": "no_NO", "en_US": "en_US"}
_ATTEMPTS = 12
_FAKER_LOCK = threading.Lock()  # seed_instance mutates the shared Faker; seed+draw must be atomic


def normalise(text: str) -> str:
    """Consistency key: case-folded, whitespace collapsed."""
    return " ".join(text.split()).casefold()


def keyed_int(secret: bytes, *parts: str) -> int:
    """64-bit integer from HMAC-SHA256(secret, parts); the unit separator keeps part boundaries distinct."""
    digest = hmac.new(secret, "\x1f".join(parts).encode("utf-8"), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big")


class SurrogateState:
    """Memory shared by every pseudonymised span of one document (or of one batch).

    ``keyed`` (needs ``secret``): seeds come from HMAC(secret, kind, original) instead of a fresh random
    generator, which makes surrogates and date offsets reproducible across calls.
    """

    def __init__(self, *, secret: bytes | None = None, keyed: bool = False, document_key: str | None = None):
        if keyed and not secret:
            raise ValueError("keyed surrogates need a secret")
        self.secret = secret
        self.keyed = keyed
        self.document_key = document_key
        self._rng = random.Random()  # seeded from os.urandom
        self._cache: dict[tuple[str, str], str | None] = {}
        self._taken: dict[str, set[str]] = {}
        self._date_offsets: dict[tuple[str | None, int, int], int] = {}

    def rng_for(self, kind: str, key: str, attempt: int = 0) -> random.Random:
        if self.keyed:
            assert self.secret is not None
            return random.Random(keyed_int(self.secret, "surrogate", kind, key, str(attempt)))
        return random.Random(self._rng.getrandbits(64))

    def surrogate(
        self, kind: str, original: str, make: Callable[[random.Random], str | None], *, distinct: bool = True
    ) -> str | None:
        """Cached surrogate for ``original``; ``None`` when no surrogate different from it can be made.

        ``distinct``: also refuse a surrogate already given to another original of this kind (two patients
        must not merge into one), retrying with the next seed.
        """
        key = normalise(original)
        if (kind, key) in self._cache:
            return self._cache[(kind, key)]
        taken = self._taken.setdefault(kind, set())
        result = None
        for attempt in range(_ATTEMPTS):
            cand = make(self.rng_for(kind, key, attempt))
            if cand is None:
                break
            # Never echo the original, and keep distinct originals distinct within this memory.
            if normalise(cand) != key and not (distinct and normalise(cand) in taken):
                result = cand
                break
        self._cache[(kind, key)] = result
        if result is not None:
            taken.add(normalise(result))
        return result

    def date_offset(self, min_days: int, max_days: int) -> int:
        """Non-zero offset in ``[-max, -min] ∪ [min, max]``, fixed per document key within this memory."""
        slot = (self.document_key, min_days, max_days)
        if slot not in self._date_offsets:
            if self.keyed:
                assert self.secret is not None
                parts = ("date-offset", self.document_key or "", str(min_days), str(max_days))
                rng = random.Random(keyed_int(self.secret, *parts))
            else:
                rng = self._rng
            self._date_offsets[slot] = rng.randint(min_days, max_days) * rng.choice((-1, 1))
        return self._date_offsets[slot]


@lru_cache(maxsize=4)
def faker_for(locale: str) -> Faker:
    try:
        from faker import Faker
    except ImportError as exc:  # faker ships with the [train] extra
        from loraner.errors import ConfigError

        raise ConfigError("the pseudonymize operator needs the 'faker' package (pip install faker)") from exc
    return Faker(FAKER_LOCALES.get(locale, locale))


def _draw(locale: str, rng: random.Random, method: str) -> str:
    fake = faker_for(locale)
    with _FAKER_LOCK:
        fake.seed_instance(rng.getrandbits(64))
        return str(getattr(fake, method)())


def like_case(template: str, word: str) -> str:
    """``word`` in the capitalisation of ``template`` (all-caps, all-lower, or as generated)."""
    if len(template) > 1 and template.isupper():
        return word.upper()
    if template.islower() and len(template) > 1:
        return word.lower()
    return word


# --- names -------------------------------------------------------------------------------------------------

_NAME_RUN = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")
# Titles and particles carry no identity; rewriting them would only make the surrogate look odd.
_KEEP_WORDS = {
    "dr", "prof", "mr", "mrs", "ms", "miss", "sir", "fru", "frøken", "herr", "lege", "sykepleier",
    "van", "von", "de", "der", "den", "af", "da", "di", "la", "le",
}  # fmt: skip


@lru_cache(maxsize=2)
def _first_names(attr: str) -> frozenset[str]:
    """Faker's given names (``first_names``, ``first_names_female``, ``first_names_male``), both locales."""
    names: set[str] = set()
    for module in ("no_NO", "en_US"):
        try:
            provider = __import__(f"faker.providers.person.{module}", fromlist=["Provider"]).Provider
        except ImportError:
            continue
        names.update(n.casefold() for n in getattr(provider, attr, ()))
    return frozenset(names)


def _first_name_method(run: str) -> str:
    # Keep the apparent gender: a surrogate "Roy" for "Kari" jars with "hun" in the next sentence.
    folded = run.casefold()
    female, male = folded in _first_names("first_names_female"), folded in _first_names("first_names_male")
    if female != male:
        return "first_name_female" if female else "first_name_male"
    return "first_name"


def _name_roles(core: str) -> list[tuple[re.Match[str], str]]:
    """Each letter run with its role: ``first`` or ``last`` (``Last, First`` order is honoured)."""
    runs = list(_NAME_RUN.finditer(core))
    comma = core.find(",")
    words = list(re.finditer(r"\S+", core))
    if comma >= 0:
        return [(r, "last" if r.start() < comma else "first") for r in runs]
    if len(words) == 1:
        # A lone word: use the name list to guess whether it is a given name or a surname.
        role = "first" if runs and runs[0].group().casefold() in _first_names("first_names") else "last"
        return [(r, role) for r in runs]
    last_word_start = words[-1].start()
    return [(r, "last" if r.start() >= last_word_start else "first") for r in runs]


def _name_token(run: str, role: str, state: SurrogateState, locale: str) -> str:
    if run.casefold() in _KEEP_WORDS:
        return run
    if len(run) == 1:  # an initial
        made = state.surrogate("initial", run, lambda rng: rng.choice(string.ascii_uppercase))
    else:
        method = _first_name_method(run) if role == "first" else "last_name"
        # One memory for all name tokens: "Nordmann" alone later maps like "Kari Nordmann" did.
        made = state.surrogate("name-token", run, lambda rng: _draw(locale, rng, method))
    return like_case(run, made or run[0].upper())


def name_surrogate(core: str, state: SurrogateState, locale: str) -> str | None:
    """Same shape as the original: word count, initials, hyphens, ``Last, First`` order."""
    roles = _name_roles(core)
    if not roles:
        return None
    out = core
    for run, role in reversed(roles):
        out = out[: run.start()] + _name_token(run.group(), role, state, locale) + out[run.end() :]
    return out if normalise(out) != normalise(core) else None


# --- locations ---------------------------------------------------------------------------------------------

_FACILITY_WORDS = {
    "sykehus", "sykehuset", "sjukehus", "sjukehuset", "universitetssykehus", "universitetssykehuset",
    "universitetssjukehus", "universitetssjukehuset", "hospital", "hospitalet", "klinikk", "klinikken",
    "clinic", "legekontor", "legekontoret", "legesenter", "legesenteret", "helsesenter", "sykehjem",
    "sykehjemmet", "center", "centre", "medical", "general", "hf", "health", "infirmary",
}  # fmt: skip
_FACILITY_SUFFIXES = ("sykehus", "sykehuset", "sjukehus", "sjukehuset", "hospital", "hospitalet", "klinikk")


def location_surrogate(core: str, rng: random.Random, locale: str) -> str:
    """Facility names keep their generic words ("… sykehus"), addresses stay addresses, others are cities."""
    city = _draw(locale, rng, "city")
    words = core.split()
    lowered = [w.strip(".,").casefold() for w in words]
    if any(w in _FACILITY_WORDS for w in lowered):
        kept = [w for w, low in zip(words, lowered, strict=True) if low in _FACILITY_WORDS]
        return " ".join([city, *kept])
    if any(w.endswith(_FACILITY_SUFFIXES) for w in lowered):  # a compound like "Rikshospitalet"
        return f"{city} sykehus" if locale == "nb_NO" else f"{city} Hospital"
    if any(ch.isdigit() for ch in core):
        if re.fullmatch(r"\d{4,5}\s+\S.*", core):  # "0155 Oslo"
            return f"{_draw(locale, rng, 'postcode')} {city}"
        street = _draw(locale, rng, "street_address")
        return f"{street}, {_draw(locale, rng, 'postcode')} {city}" if "," in core else street
    return city


# --- phone numbers and IDs ---------------------------------------------------------------------------------

_KNOWN_CC = ("358", "354", "47", "46", "45", "44", "49", "48", "33", "34", "31", "39", "1")
_PREFIX = re.compile(r"^\W*(?:\+|00)(\d{1,3})(?=\D)")


def _phone_prefix_len(core: str) -> int:
    """Characters at the start that form the country prefix (kept as is)."""
    m = _PREFIX.match(core)
    if m:
        return m.end()
    m = re.match(r"^\W*(?:\+|00)", core)
    if not m:
        return 0
    digits = core[m.end() :]
    cc = next((c for c in _KNOWN_CC if digits.startswith(c)), digits[:2])
    return m.end() + len(cc)


def _fill(layout: str, positions: list[int], chars: str) -> str:
    """``layout`` with the characters at ``positions`` replaced, in order, by ``chars``."""
    out = list(layout)
    for i, ch in zip(positions, chars, strict=True):
        out[i] = ch
    return "".join(out)


def phone_surrogate(core: str, state: SurrogateState) -> str | None:
    """New digits in the original layout. The country prefix and the first national digit (mobile vs
    landline, area) are kept so the number stays plausible; separators and brackets are untouched.

    The memory is keyed by the national digits, so ``912 34 567`` and ``91234567`` get the same new digits.
    """
    positions = [i for i in range(_phone_prefix_len(core), len(core)) if core[i].isdigit()]
    if not positions:
        return None
    digits = "".join(core[i] for i in positions)
    new = state.surrogate(
        "phone", digits, lambda rng: digits[0] + "".join(str(rng.randrange(10)) for _ in digits[1:])
    )
    return _fill(core, positions, new) if new is not None else None


def _random_like(chars: str, rng: random.Random) -> str:
    out = []
    for i, ch in enumerate(chars):
        if ch.isdigit():
            # No new leading zero: "0123" style IDs keep it, others must not gain one.
            out.append(str(rng.randint(1 if i == 0 and ch != "0" else 0, 9)))
        else:
            out.append(rng.choice(string.ascii_uppercase if ch.isupper() else string.ascii_lowercase))
    return "".join(out)


def id_surrogate(core: str, state: SurrogateState) -> str | None:
    """11 digits (optionally ``DDMMYY IIIKK``) → a valid fødselsnummer (a D-number stays a D-number).
    Anything else keeps its layout and character classes: digit → digit, letter → letter of the same case.

    The memory is keyed by the digits and letters only, so ``010190 12345`` and ``01019012345`` agree.
    """
    positions = [i for i, ch in enumerate(core) if ch.isdigit() or (ch.isalpha() and ch.isascii())]
    if not positions:
        return None
    chars = "".join(core[i] for i in positions)
    is_fnr = len(chars) == 11 and chars.isascii() and chars.isdigit() and core.replace(" ", "") == chars
    if is_fnr and (core == chars or core[6] == " "):
        new = state.surrogate("fnr", chars, lambda rng: generate_fnr(rng, d_number=is_d_number(chars)))
    else:
        new = state.surrogate("id", chars, lambda rng: _random_like(chars, rng))
    return _fill(core, positions, new) if new is not None else None


# --- ages and dates ----------------------------------------------------------------------------------------

# HIPAA Safe Harbor: ages over 89 are aggregated into one "90 or older" category.
_AGE_CAP = 90


def _nearby(n: int, rng: random.Random, jitter: int) -> str:
    delta = rng.randint(1, jitter) * rng.choice((-1, 1))
    new = n + delta if n + delta >= 0 else n - delta
    return str(min(new, _AGE_CAP - 1))


def age_surrogate(core: str, state: SurrogateState, jitter: int) -> str | None:
    """Every number moves by a non-zero amount up to ``jitter`` (never below 0); ages ≥ 90 become ``90+``.

    Keyed per number, so "63" and "63 år" in one note stay the same age. Two ages may share a surrogate:
    unlike names, that links nothing.
    """
    if not re.search(r"\d", core):
        return None

    def repl(m: re.Match[str]) -> str:
        n = int(m.group())
        if n >= _AGE_CAP:
            return f"{_AGE_CAP}+"
        made = state.surrogate("age", str(n), lambda rng: _nearby(n, rng, jitter), distinct=False)
        assert made is not None, "a jitter of at least 1 always moves the number"
        return made

    return re.sub(r"\d+", repl, core)


def date_surrogate(core: str, state: SurrogateState, *, locale: str, min_days: int, max_days: int,
                   day_first: bool | None) -> str | None:  # fmt: skip
    lang = "en" if locale == "en_US" else "nb"
    if day_first is None:
        day_first = locale != "en_US"  # 10/09/1963 is 10 September in Norway, 9 October in the US
    return shift_date_text(core, state.date_offset(min_days, max_days), lang=lang, day_first=day_first)


def email_surrogate(rng: random.Random, locale: str) -> str:
    return _draw(locale, rng, "email")
