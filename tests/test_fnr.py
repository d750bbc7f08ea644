"""Norwegian national identity numbers: the one generator and validator the data and deid code share."""

from __future__ import annotations

import random
from datetime import date

import pytest

from loraner.fnr import fnr_for, generate_fnr, is_d_number, valid_fnr


@pytest.mark.parametrize("birth", [date(1950, 1, 31), date(1999, 12, 1), date(2005, 6, 15)])
@pytest.mark.parametrize("male", [True, False])
def test_when_a_number_is_made_then_it_is_valid_and_encodes_birth_and_sex(birth: date, male: bool):
    value = fnr_for(birth, random.Random(1), male=male)
    assert valid_fnr(value)
    assert value[:6] == birth.strftime("%d%m%y")
    assert int(value[8]) % 2 == int(male)
    assert (int(value[6:9]) >= 500) == (birth.year >= 2000)  # the individual number encodes the century


def test_when_seeded_then_the_numbers_are_those_the_synthetic_data_always_had():
    # Values the generator gave before it moved to loraner.fnr (commit 4d0cb0f): same seed, same notes.
    assert fnr_for(date(1950, 1, 31), random.Random(1), male=True) == "31015029199"
    assert fnr_for(date(2005, 6, 15), random.Random(1), male=False) == "15060591021"
    d_number = fnr_for(date(1999, 12, 1), random.Random(2), male=True, d_number=True)
    assert d_number == "41129944127" and is_d_number(d_number) and valid_fnr(d_number)


@pytest.mark.parametrize(
    "value",
    ["01010050150", "0101005015", "abcdefghijk", "010100501500", "32010050151"],  # check digit, length, date
)
def test_when_a_number_is_malformed_then_it_is_rejected(value: str):
    assert not valid_fnr(value)


def test_when_the_year_has_no_century_code_then_generation_refuses():
    with pytest.raises(ValueError, match="1899"):
        fnr_for(date(1899, 5, 1), random.Random(0))
    assert all(valid_fnr(generate_fnr(random.Random(seed))) for seed in range(50))
