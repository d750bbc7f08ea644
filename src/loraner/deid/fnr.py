"""Norwegian national identity numbers (fødselsnummer, D-number): validation and surrogate generation.

Layout ``DDMMYY III K1 K2``: birth date, individual number, two mod-11 control digits. D-numbers add 4 to
the first digit (day + 40); H-numbers add 4 to the third (month + 40); the Tax Administration's synthetic
test numbers (Tenor) add 8 to the third (month + 80). All of these are accepted.
"""

from __future__ import annotations

import random

K1_WEIGHTS = (3, 7, 6, 1, 8, 9, 4, 5, 2)
K2_WEIGHTS = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
# February allows 29: the century (needed for leap years) depends on the individual number, and a
# recogniser gains nothing from rejecting the rare 29.02 of a non-leap year.
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_MONTH_OFFSETS = (0, 40, 80)


def control_digit(digits: str, weights: tuple[int, ...]) -> int | None:
    """Mod-11 control digit for ``digits`` (``None`` when the remainder makes it 10, i.e. no valid number)."""
    rest = sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11
    k = (11 - rest) % 11
    return None if k == 10 else k


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


def valid_fnr(s: str) -> bool:
    """True for an 11-digit fødselsnummer or D-number whose date part is plausible and BOTH control
    digits match. One space after the sixth digit (``DDMMYY IIIKK``) is accepted."""
    digits = _compact(s)
    if digits is None or not _plausible_date(digits):
        return False
    k1 = control_digit(digits[:9], K1_WEIGHTS)
    if k1 is None or k1 != int(digits[9]):
        return False
    k2 = control_digit(digits[:10], K2_WEIGHTS)
    return k2 is not None and k2 == int(digits[10])


def is_d_number(s: str) -> bool:
    digits = _compact(s)
    return digits is not None and int(digits[0]) >= 4


def generate_fnr(rng: random.Random, *, d_number: bool = False) -> str:
    """A random valid 11-digit number (birth date 1930-2019); redraws when a control digit would be 10."""
    while True:
        year = rng.randint(1930, 2019)
        month = rng.randint(1, 12)
        day = rng.randint(1, 28)
        # Individual numbers 000-499 belong to 1900-1999; 500-999 to 2000-2039.
        individual = rng.randint(0, 499) if year < 2000 else rng.randint(500, 999)
        body = f"{day + (40 if d_number else 0):02d}{month:02d}{year % 100:02d}{individual:03d}"
        k1 = control_digit(body, K1_WEIGHTS)
        if k1 is None:
            continue
        k2 = control_digit(body + str(k1), K2_WEIGHTS)
        if k2 is None:
            continue
        return f"{body}{k1}{k2}"
