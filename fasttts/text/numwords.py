"""Spelling numbers as words, in English and Chinese.

Small and table-driven on purpose: the normalisers only need cardinals, ordinals, years, decimals
and digit-by-digit reading, which is less code than wrapping a general-purpose library.
Inputs are digit strings (as matched in text) or ints; numbers too long to have a name are read
digit by digit.
"""

from __future__ import annotations

_EN_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen").split()
_EN_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_EN_SCALES = ("", "thousand", "million", "billion", "trillion", "quadrillion")
_EN_ORDINAL_EXCEPTIONS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}

_ZH_DIGITS = "零一二三四五六七八九"
_ZH_SMALL_UNITS = ("", "十", "百", "千")
_ZH_GROUP_UNITS = ("", "万", "亿", "万亿")


def en_digits(digits: str) -> str:
    """``"007"`` → ``"zero zero seven"``."""
    return " ".join(_EN_ONES[int(d)] for d in digits)


def _en_below_thousand(n: int) -> str:
    hundreds, rest = divmod(n, 100)
    words = [f"{_EN_ONES[hundreds]} hundred"] if hundreds else []
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(_EN_TENS[tens] + (f"-{_EN_ONES[ones]}" if ones else ""))
    elif rest:
        words.append(_EN_ONES[rest])
    return " ".join(words)


def en_cardinal(n: int) -> str:
    """``-1234`` → ``"minus one thousand two hundred thirty-four"``."""
    if n < 0:
        return "minus " + en_cardinal(-n)
    if n < 20:
        return _EN_ONES[n]
    if n >= 1000 ** len(_EN_SCALES):
        return en_digits(str(n))
    words = []
    for power in range(len(_EN_SCALES) - 1, -1, -1):
        group = (n // 1000**power) % 1000
        if group:
            words.append(_en_below_thousand(group) + (f" {_EN_SCALES[power]}" if power else ""))
    return " ".join(words)


def en_ordinal(n: int) -> str:
    """``21`` → ``"twenty-first"``: the last word of the cardinal becomes ordinal."""
    words = en_cardinal(n)
    cut = max(words.rfind(" "), words.rfind("-")) + 1
    head, last = words[:cut], words[cut:]
    if last in _EN_ORDINAL_EXCEPTIONS:
        last = _EN_ORDINAL_EXCEPTIONS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return head + last


def en_year(n: int) -> str:
    """Read a year the way people say it: 1999 → nineteen ninety-nine, 2005 → two thousand five."""
    if not 1000 <= n <= 9999 or n % 1000 == 0 or 2000 <= n < 2010:
        return en_cardinal(n)
    high, low = divmod(n, 100)
    if low == 0:
        return f"{en_cardinal(high)} hundred"
    if low < 10:
        return f"{en_cardinal(high)} oh {_EN_ONES[low]}"
    return f"{en_cardinal(high)} {en_cardinal(low)}"


def en_number(integer: str, fraction: str | None = None) -> str:
    """A matched number: integer digits (commas allowed) and optional fraction digits."""
    integer = integer.replace(",", "")
    if len(integer) > 1 and integer.startswith("0"):
        words = en_digits(integer)
    else:
        words = en_cardinal(int(integer))
    if fraction:
        words += " point " + en_digits(fraction)
    return words


def en_plural(word: str) -> str:
    """Plural of the last word of a spelled number or unit (sixties, hundreds)."""
    if word.endswith("y"):
        return word[:-1] + "ies"
    return word + "s"


def zh_digits(digits: str) -> str:
    """``"2024"`` → ``"二零二四"`` (years, phone numbers, decimals)."""
    return "".join(_ZH_DIGITS[int(d)] for d in digits)


def _zh_group(n: int) -> str:
    """0 < n < 10000 → reading with inner zeros collapsed: 1005 → 一千零五."""
    out: list[str] = []
    zero = False
    for power in range(3, -1, -1):
        digit = (n // 10**power) % 10
        if digit == 0:
            zero = bool(out)
            continue
        if zero:
            out.append("零")
            zero = False
        out.append(_ZH_DIGITS[digit] + _ZH_SMALL_UNITS[power])
    return "".join(out)


def zh_cardinal(n: int) -> str:
    """``-10050`` → ``"负一万零五十"``; 10–19 read 十X, not 一十X."""
    if n < 0:
        return "负" + zh_cardinal(-n)
    if n == 0:
        return "零"
    if n >= 10000 ** len(_ZH_GROUP_UNITS):
        return zh_digits(str(n))
    out: list[str] = []
    need_zero = False
    for index in range(len(_ZH_GROUP_UNITS) - 1, -1, -1):
        group = (n // 10000**index) % 10000
        if group == 0:
            need_zero = bool(out)
            continue
        if out and (need_zero or group < 1000):
            out.append("零")
        out.append(_zh_group(group) + _ZH_GROUP_UNITS[index])
        need_zero = False
    words = "".join(out)
    return words[1:] if words.startswith("一十") else words


def zh_number(integer: str, fraction: str | None = None) -> str:
    """A matched number read in Chinese: 3.14 → 三点一四; leading zeros read digit by digit."""
    integer = integer.replace(",", "")
    if len(integer) > 1 and integer.startswith("0"):
        words = zh_digits(integer)
    else:
        words = zh_cardinal(int(integer))
    if fraction:
        words += "点" + zh_digits(fraction)
    return words
