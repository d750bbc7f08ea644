"""Date parsing and shifting keep the written format."""

from __future__ import annotations

import pytest

from loraner.deid.dates import parse_date, shift_date_text


@pytest.mark.parametrize(
    ("original", "days", "lang", "day_first", "expected"),
    [
        ("10. september 1963", 30, "nb", True, "10. oktober 1963"),
        ("10.09.1963", 30, "nb", True, "10.10.1963"),
        ("10/09/1963", 30, "nb", True, "10/10/1963"),
        ("1963-09-10", 30, "nb", True, "1963-10-10"),
        ("September 10. 1963", 30, "nb", True, "October 10. 1963"),
        ("September 10, 1963", -45, "en", False, "July 27, 1963"),
        ("10 Sep 2019", 30, "en", True, "10 Oct 2019"),
        ("10 Sep 2019", 30, "nb", True, "10 Okt 2019"),
        ("10. sep. 2019", 30, "en", True, "10. okt. 2019"),  # "10." is Norwegian order
        ("1.9.63", 30, "nb", True, "1.10.63"),  # unpadded, two-digit year
        ("01.09.63", 30, "nb", True, "01.10.63"),
        ("31. desember 1999", 1, "nb", True, "1. januar 2000"),
        ("SEPT. 3RD, 2001", 30, "en", True, "OCT. 3RD, 2001"),
        ("3rd of March 2001", 30, "en", True, "2nd of April 2001"),
        ("mars 2001", 30, "nb", True, "april 2001"),
        ("29. februar", 1, "nb", True, "1. mars"),
        ("09/10/1963", 1, "en", False, "09/11/1963"),  # month first
        ("13/12/2020", 20, "en", False, "02/01/2021"),  # 13 cannot be a month: read day first
        ("  5. mai 2020 ", 31, "nb", True, "  5. juni 2020 "),
    ],
)
def test_when_date_is_shifted_then_format_is_kept(original, days, lang, day_first, expected):
    assert shift_date_text(original, days, lang=lang, day_first=day_first) == expected


@pytest.mark.parametrize(
    "text", ["mandag", "32.01.2000", "10.13.2000 kl 14", "i går", "Q3 2020", "31. februar"]
)
def test_when_text_is_not_a_date_then_parse_returns_none(text):
    assert parse_date(text) is None
    assert shift_date_text(text, 10) is None
