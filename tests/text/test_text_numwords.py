"""Number spelling: English and Chinese cardinals, ordinals, years, digit strings."""

import re

import pytest

from fasttts.text.numwords import en_cardinal, en_digits, en_number, en_ordinal, en_year, zh_cardinal, zh_number

_EN_WORD = re.compile(r"^[a-z]+(?:-[a-z]+)?$")
_ZH_NUMERALS = set("零一二三四五六七八九十百千万亿负")


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "zero"),
        (13, "thirteen"),
        (20, "twenty"),
        (21, "twenty-one"),
        (100, "one hundred"),
        (101, "one hundred one"),
        (1000, "one thousand"),
        (1_000_001, "one million one"),
        (-42, "minus forty-two"),
        (12_345, "twelve thousand three hundred forty-five"),
    ],
)
def test_en_cardinal_known_values(n: int, words: str) -> None:
    assert en_cardinal(n) == words


@pytest.mark.parametrize("n", [0, 1, 7, 19, 20, 99, 100, 999, 1001, 65_536, 10**9 + 7, 10**15 + 3])
def test_en_cardinal_is_only_number_words(n: int) -> None:
    words = en_cardinal(n).split()
    assert words and all(_EN_WORD.match(w) for w in words)


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (1, "first"),
        (2, "second"),
        (3, "third"),
        (4, "fourth"),
        (5, "fifth"),
        (8, "eighth"),
        (9, "ninth"),
        (12, "twelfth"),
        (20, "twentieth"),
        (21, "twenty-first"),
        (22, "twenty-second"),
        (100, "one hundredth"),
        (103, "one hundred third"),
    ],
)
def test_en_ordinal(n: int, words: str) -> None:
    assert en_ordinal(n) == words


@pytest.mark.parametrize(
    ("year", "words"),
    [
        (1999, "nineteen ninety-nine"),
        (2024, "twenty twenty-four"),
        (2000, "two thousand"),
        (2005, "two thousand five"),
        (2010, "twenty ten"),
        (1900, "nineteen hundred"),
        (1105, "eleven oh five"),
    ],
)
def test_en_year(year: int, words: str) -> None:
    assert en_year(year) == words


def test_en_digit_strings_and_decimals() -> None:
    assert en_digits("007") == "zero zero seven"
    assert en_number("007") == "zero zero seven"
    assert en_number("1,234") == "one thousand two hundred thirty-four"
    assert en_number("3", "14") == "three point one four"


def test_en_huge_numbers_fall_back_to_digits() -> None:
    assert en_cardinal(10**21) == " ".join(["one"] + ["zero"] * 21)


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "零"),
        (10, "十"),
        (15, "十五"),
        (20, "二十"),
        (110, "一百一十"),
        (1005, "一千零五"),
        (10050, "一万零五十"),
        (20300, "二万零三百"),
        (100000, "十万"),
        (100_000_001, "一亿零一"),
        (120_000_000, "一亿二千万"),
        (-7, "负七"),
    ],
)
def test_zh_cardinal(n: int, words: str) -> None:
    assert zh_cardinal(n) == words


@pytest.mark.parametrize("n", [1, 9, 11, 101, 1010, 10001, 99999, 123456789, 10**12 + 5])
def test_zh_cardinal_uses_only_numerals(n: int) -> None:
    assert set(zh_cardinal(n)) <= _ZH_NUMERALS


def test_zh_decimals_and_leading_zeros() -> None:
    assert zh_number("3", "14") == "三点一四"
    assert zh_number("007") == "零零七"
    assert zh_number("1,000") == "一千"
