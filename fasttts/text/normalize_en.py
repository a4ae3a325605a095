"""English normalisation rules: numbers, dates, times, money, units and abbreviations.

Each rule is a ``(pattern, replacement)`` pair applied in order over text that holds no inline
tags (:mod:`fasttts.text.normalize` cuts those out first). The order matters: specific shapes
(dates, times, money, units) must be read before the generic cardinal rule sees their digits.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from fasttts.text.numwords import en_cardinal, en_number, en_ordinal, en_plural, en_year

Replacement = Callable[[re.Match[str]], str]

NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
"""A written number: optional thousands separators, optional decimals."""
NEG = r"(?P<neg>(?<![\w-])-)?"
"""A minus sign, only where it cannot be a hyphen between words or a range (3-5)."""

MONTHS = ("January February March April May June July August September October November December").split()
_MONTH_NUMBERS = {name.lower(): i + 1 for i, name in enumerate(MONTHS)} | {name[:3].lower(): i + 1 for i, name in enumerate(MONTHS)} | {"sept": 9}
_MONTH = r"(?P<month>" + "|".join(sorted((m.capitalize() for m in _MONTH_NUMBERS), key=len, reverse=True)) + r")\b\.?"

_CURRENCIES: dict[str, tuple[str, str, str | None, str | None]] = {
    # symbol or code: (one, many, one minor, many minor)
    "$": ("dollar", "dollars", "cent", "cents"),
    "€": ("euro", "euros", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "¥": ("yen", "yen", None, None),
    "USD": ("US dollar", "US dollars", "cent", "cents"),
    "EUR": ("euro", "euros", "cent", "cents"),
    "GBP": ("pound", "pounds", "penny", "pence"),
    "JPY": ("yen", "yen", None, None),
    "CNY": ("yuan", "yuan", None, None),
    "RMB": ("yuan", "yuan", None, None),
}

_UNITS: dict[str, tuple[str, str]] = {
    "km/h": ("kilometer per hour", "kilometers per hour"),
    "m/s": ("meter per second", "meters per second"),
    "mph": ("mile per hour", "miles per hour"),
    "km": ("kilometer", "kilometers"),
    "m": ("meter", "meters"),
    "cm": ("centimeter", "centimeters"),
    "mm": ("millimeter", "millimeters"),
    "mi": ("mile", "miles"),
    "ft": ("foot", "feet"),
    "kg": ("kilogram", "kilograms"),
    "g": ("gram", "grams"),
    "mg": ("milligram", "milligrams"),
    "lb": ("pound", "pounds"),
    "lbs": ("pound", "pounds"),
    "oz": ("ounce", "ounces"),
    "l": ("liter", "liters"),
    "L": ("liter", "liters"),
    "ml": ("milliliter", "milliliters"),
    "mL": ("milliliter", "milliliters"),
    "°C": ("degree Celsius", "degrees Celsius"),
    "°F": ("degree Fahrenheit", "degrees Fahrenheit"),
    "°": ("degree", "degrees"),
    "kb": ("kilobyte", "kilobytes"),
    "KB": ("kilobyte", "kilobytes"),
    "kB": ("kilobyte", "kilobytes"),
    "MB": ("megabyte", "megabytes"),
    "GB": ("gigabyte", "gigabytes"),
    "TB": ("terabyte", "terabytes"),
    "Hz": ("hertz", "hertz"),
    "kHz": ("kilohertz", "kilohertz"),
    "MHz": ("megahertz", "megahertz"),
    "GHz": ("gigahertz", "gigahertz"),
    "ms": ("millisecond", "milliseconds"),
    "s": ("second", "seconds"),
    "sec": ("second", "seconds"),
    "min": ("minute", "minutes"),
    "h": ("hour", "hours"),
    "hr": ("hour", "hours"),
    "hrs": ("hour", "hours"),
}
_UNIT = r"(?P<unit>" + "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True)) + r")(?![A-Za-z0-9])"

_FRACTIONS = {2: ("half", "halves"), 3: ("third", "thirds"), 4: ("quarter", "quarters")}

_PUNCTUATION = str.maketrans({"。": ". ", "、": ", ", "「": '"', "」": '"', "『": '"', "』": '"', "《": '"', "》": '"'})


_SENTENCE_START = re.compile(r"\s*(?:$|\n|[A-Z])")


def _words(number: str) -> str:
    integer, _, fraction = number.partition(".")
    return en_number(integer, fraction or None)


def _minus(match: re.Match[str]) -> str:
    return "minus " if match.group("neg") else ""


def _ends_sentence(match: re.Match[str]) -> bool:
    """A consumed trailing period also ended the sentence: keep one."""
    return match.group().endswith(".") and _SENTENCE_START.match(match.string, match.end()) is not None


def _keep_period(expansion: str) -> Replacement:
    return lambda m: expansion + ("." if _ends_sentence(m) else "")


def _saint_or_street(m: re.Match[str]) -> str:
    """ "St. Louis" is a saint, "Main St." a street; anything in between stays as written."""
    before, after = m.string[max(0, m.start() - 40) : m.start()], m.string[m.end() : m.end() + 40]
    after_name = re.search(r"\b[A-Z][a-z]+ $", before) is not None
    if after_name and re.match(r"\s*(?:$|[,;\n]|\s+[a-z])", after):
        return "Street"
    if not after_name and re.match(r" [A-Z]", after):
        return "Saint"
    return m.group()


def _date(month: int, day: int, year: str | None) -> str | None:
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    words = f"{MONTHS[month - 1]} {en_ordinal(day)}"
    return f"{words}, {en_year(int(year))}" if year else words


def _iso_date(m: re.Match[str]) -> str:
    return _date(int(m["month"]), int(m["day"]), m["year"]) or m.group()


def _slash_date(m: re.Match[str]) -> str:
    first, second = int(m["a"]), int(m["b"])
    month, day = (second, first) if first > 12 >= second else (first, second)
    return _date(month, day, m["year"]) or m.group()


def _month_day(m: re.Match[str]) -> str:
    return _date(_MONTH_NUMBERS[m["month"].lower()], int(m["day"]), m["year"]) or m.group()


def _day_month(m: re.Match[str]) -> str:
    day, month = int(m["day"]), _MONTH_NUMBERS[m["month"].lower()]
    if not 1 <= day <= 31:
        return m.group()
    words = f"the {en_ordinal(day)} of {MONTHS[month - 1]}"
    return f"{words}, {en_year(int(m['year']))}" if m["year"] else words


def _month_year(m: re.Match[str]) -> str:
    return f"{MONTHS[_MONTH_NUMBERS[m['month'].lower()] - 1]} {en_year(int(m['year']))}"


def _time(m: re.Match[str]) -> str:
    hour, minute = int(m["hour"]), int(m["minute"] or 0)
    meridiem = f" {m['ap'].upper()} M" if m["ap"] else ""
    if minute == 0:
        if meridiem:
            words = en_cardinal(hour)
        else:
            words = f"{en_cardinal(hour)} o'clock" if 1 <= hour <= 12 else f"{en_cardinal(hour)} hundred"
    elif minute < 10:
        words = f"{en_cardinal(hour)} oh {en_cardinal(minute)}"
    else:
        words = f"{en_cardinal(hour)} {en_cardinal(minute)}"
    if m["second"]:
        second = int(m["second"])
        words += f" and {en_cardinal(second)} second{'s' if second != 1 else ''}"
    return words + meridiem + ("." if _ends_sentence(m) else "")


def _money(m: re.Match[str]) -> str:
    one, many, minor_one, minor_many = _CURRENCIES[m["cur"]]
    number = m["num"]
    integer, _, fraction = number.partition(".")
    scale = m["scale"] or {"k": "thousand", "K": "thousand", "M": "million", "B": "billion", "bn": "billion"}.get(m["abbr"] or "", "")
    if scale:
        return f"{_minus(m)}{_words(number)} {scale} {many}"
    if fraction and minor_one and len(fraction) <= 2:
        major, minor = int(integer.replace(",", "")), int(fraction.ljust(2, "0"))
        parts = []
        if major or not minor:
            parts.append(f"{en_number(integer)} {one if major == 1 else many}")
        if minor:
            parts.append(f"{en_cardinal(minor)} {minor_one if minor == 1 else minor_many}")
        return _minus(m) + " and ".join(parts)
    return f"{_minus(m)}{_words(number)} {one if number == '1' else many}"


def _unit(m: re.Match[str]) -> str:
    one, many = _UNITS[m["unit"]]
    return f"{_minus(m)}{_words(m['num'])} {one if m['num'] == '1' else many}"


def _fraction(m: re.Match[str]) -> str:
    numerator, denominator = int(m["n"]), int(m["d"])
    if denominator in _FRACTIONS:
        one, many = _FRACTIONS[denominator]
    else:
        one, many = en_ordinal(denominator), en_plural(en_ordinal(denominator))
    return f"{en_cardinal(numerator)} {one if numerator == 1 else many}"


RULES: list[tuple[re.Pattern[str], Replacement | str]] = [
    # Abbreviations, expanded only where the reading is unambiguous.
    (re.compile(r"\bMr\."), "Mister"),
    (re.compile(r"\bMrs\."), "Missus"),
    (re.compile(r"\bMs\.(?=\s+[A-Z])"), "Miz"),
    (re.compile(r"\bDr\.(?=\s+[A-Z])"), "Doctor"),
    (re.compile(r"\bProf\.(?=\s+[A-Z])"), "Professor"),
    (re.compile(r"\bSt\."), _saint_or_street),
    (re.compile(r"\bJr\."), _keep_period("Junior")),
    (re.compile(r"\bSr\."), _keep_period("Senior")),
    (re.compile(r"\betc\."), _keep_period("et cetera")),
    (re.compile(r"\be\.g\.", re.IGNORECASE), "for example"),
    (re.compile(r"\bi\.e\.", re.IGNORECASE), "that is"),
    (re.compile(r"\bvs\.?(?= )"), "versus"),
    (re.compile(r"\bapprox\.(?= )"), "approximately"),
    (re.compile(r"\bNo\.\s?(?=\d)"), "number "),
    (re.compile(r"#(?=\d)"), "number "),
    (re.compile(r"\s*&\s*"), " and "),
    (re.compile(r"(?<=[,;!?])(?=[A-Za-z])"), " "),
    # Dates.
    (re.compile(r"\b(?P<year>\d{4})-(?P<month>\d{1,2})-(?P<day>\d{1,2})\b"), _iso_date),
    (re.compile(r"\b(?P<a>\d{1,2})/(?P<b>\d{1,2})/(?P<year>\d{4})\b"), _slash_date),
    (re.compile(_MONTH + r"\s+(?P<day>\d{1,2})(?:st|nd|rd|th)?\b(?:,?\s+(?P<year>\d{4})\b)?"), _month_day),
    (
        re.compile(r"\b(?P<day>\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?" + _MONTH + r"(?:,?\s+(?P<year>\d{4})\b)?"),
        _day_month,
    ),
    (re.compile(_MONTH + r"\s+(?P<year>\d{4})\b"), _month_year),
    # Times: 3:45, 15:30:10, 3:45 pm, 7 a.m.
    (
        re.compile(
            r"\b(?P<hour>[01]?\d|2[0-3]):(?P<minute>[0-5]\d)(?::(?P<second>[0-5]\d))?"
            r"(?:\s*(?P<ap>[AaPp])\.?\s?[Mm]\b\.?)?"
        ),
        _time,
    ),
    (re.compile(r"\b(?P<hour>1[0-2]|0?[1-9])(?P<minute>)(?P<second>)\s*(?P<ap>[AaPp])\.?\s?[Mm]\b\.?"), _time),
    # Decades (before units read the "s" as seconds): 1990s, '80s.
    (re.compile(r"\b(?P<year>1[1-9]\d0|20\d0)s\b"), lambda m: en_plural(en_year(int(m["year"])))),
    (re.compile(r"(?<![\d'])'?(?P<tens>[2-9]0)s\b"), lambda m: en_plural(en_cardinal(int(m["tens"])))),
    # Money: $5, $5.20, -$3, €3 million, 5 USD.
    (
        re.compile(
            NEG + r"(?P<cur>[$€£¥])\s?(?P<num>" + NUM + r")"
            r"(?:\s(?P<scale>thousand|million|billion|trillion)\b|(?P<abbr>k|K|M|B|bn)\b)?"
        ),
        _money,
    ),
    (re.compile(NEG + r"(?P<num>" + NUM + r")\s?(?P<cur>USD|EUR|GBP|JPY|CNY|RMB)\b(?P<scale>)(?P<abbr>)"), _money),
    # Percentages and units after a number.
    (re.compile(NEG + r"(?P<num>" + NUM + r")\s?%"), lambda m: f"{_minus(m)}{_words(m['num'])} percent"),
    (re.compile(NEG + r"(?P<num>" + NUM + r")\s?" + _UNIT), _unit),
    # Ordinals, versions, fractions, years, then every other number.
    (
        re.compile(r"\b(?P<num>\d{1,3}(?:,\d{3})+|\d+)(?:st|nd|rd|th|ST|ND|RD|TH)\b"),
        lambda m: en_ordinal(int(m["num"].replace(",", ""))),
    ),
    (re.compile(r"\b\d+(?:\.\d+){2,}\b"), lambda m: " dot ".join(en_number(p) for p in m.group().split("."))),
    (re.compile(r"(?<![\d/])\b(?P<n>\d{1,2})/(?P<d>[2-9]|10)\b(?![/\d])"), _fraction),
    (re.compile(r"(?<![\d.,])\b(?P<year>1[1-9]\d\d|20\d\d)\b(?![.,]\d)"), lambda m: en_year(int(m["year"]))),
    (re.compile(NEG + r"(?P<num>" + NUM + r")"), lambda m: _minus(m) + _words(m["num"])),
]


def _apply(pattern: re.Pattern[str], replacement: Replacement | str, text: str) -> str:
    def replace(m: re.Match[str]) -> str:
        words = replacement if isinstance(replacement, str) else replacement(m)
        if words == m.group() or not words.strip():
            return words
        # Keep words apart from letters they were glued to (MP3 → MP three).
        before = m.string[m.start() - 1] if m.start() else ""
        after = m.string[m.end()] if m.end() < len(m.string) else ""
        if before.isalnum() and words[0].isalnum():
            words = " " + words
        if after.isalnum() and words[-1].isalnum():
            words += " "
        return words

    return pattern.sub(replace, text)


def normalize(text: str) -> str:
    """Apply every English rule, in order, to tag-free ``text``."""
    text = text.translate(_PUNCTUATION)
    for pattern, replacement in RULES:
        text = _apply(pattern, replacement, text)
    return text
