"""Norwegian national identity numbers (fødselsnummer, D-number): validation and generation.

Layout ``DDMMYY III K1 K2``: birth date, individual number, two mod-11 control digits (computed by
python-stdnum's ``stdnum.no.fodselsnummer``). D-numbers add 4 to the first digit (day + 40); H-numbers
add 4 to the third (month + 40); the Tax Administration's synthetic test numbers (Tenor) add 8 to the
third (month + 80). All of these are accepted: stdnum's own ``is_valid`` rejects Tenor numbers and
numbers whose birth date lies in the future, which a recogniser must still find.

Used by the synthetic-data generator (to write valid numbers), the fødselsnummer recogniser and the
pseudonymiser (to replace one valid number by another).
"""

from __future__ import annotations

import random
from datetime import date

from stdnum.no.fodselsnummer import calc_check_digit1, calc_check_digit2

# February allows 29: the century (needed for leap years) depends on the individual number, and a
# recogniser gains nothing from rejecting the rare 29.02 of a non-leap year.
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_MONTH_OFFSETS = (0, 40, 80)


def _compact(s: str) -> str | None:
    """Digits of ``s`` if it is 11 digits, optionally with one space after the sixth."""
    if len(s) == 12 and s[6] == " ":
        s = s[:6] + s[7:]
    return s if len(s) == 11 and s.isascii() and s.isdigit() else None


def _plausible_date(digits: str) -> bool:
    day, month = int(digits[:2]), int(digits[2:4])
    if day > 40:  # D-number
        day -= 40
    for offset in _MONTH_OFFSETS:
        if 1 <= month - offset <= 12:
            return 1 <= day <= _MONTH_DAYS[month - offset - 1]
    return False


def with_check_digits(body: str) -> str | None:
    """``body`` (9 digits) plus its two control digits; ``None`` when a control digit would be 10 (no
    valid number has that body)."""
    k1 = calc_check_digit1(body)
    if len(k1) != 1:
        return None
    k2 = calc_check_digit2(body + k1)
    return None if len(k2) != 1 else body + k1 + k2


def valid_fnr(s: str) -> bool:
    """True for an 11-digit fødselsnummer or D-number whose date part is plausible and BOTH control
    digits match. One space after the sixth digit (``DDMMYY IIIKK``) is accepted."""
    digits = _compact(s)
    return digits is not None and _plausible_date(digits) and with_check_digits(digits[:9]) == digits


def is_d_number(s: str) -> bool:
    digits = _compact(s)
    return digits is not None and int(digits[0]) >= 4


def fnr_for(birth: date, rng: random.Random, *, male: bool | None = None, d_number: bool = False) -> str:
    """A valid number for ``birth`` (years 1900-2039). The individual number's range encodes the century
    (000-499: 1900-1999, 500-999: 2000-2039) and its last digit the sex (odd: male); bodies whose control
    digit would be 10 are redrawn."""
    if not 1900 <= birth.year <= 2039:
        raise ValueError(f"birth year {birth.year} has no fødselsnummer century (1900-2039)")
    low, high = (0, 499) if birth.year < 2000 else (500, 999)
    day = birth.day + (40 if d_number else 0)
    while True:
        individual = rng.randint(low, high)
        if male is not None and individual % 2 != int(male):
            continue
        number = with_check_digits(f"{day:02d}{birth.month:02d}{birth.year % 100:02d}{individual:03d}")
        if number is not None:
            return number


def generate_fnr(rng: random.Random, *, d_number: bool = False) -> str:
    """A random valid 11-digit number (birth date 1930-2019)."""
    birth = date(rng.randint(1930, 2019), rng.randint(1, 12), rng.randint(1, 28))
    return fnr_for(birth, rng, d_number=d_number)
