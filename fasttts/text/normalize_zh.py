"""Chinese normalisation rules: Arabic numbers to Chinese readings, units, money, punctuation.

Each rule is a ``(pattern, replacement)`` pair applied in order over tag-free text (see
:mod:`fasttts.text.normalize`). Years are read digit by digit (2024年 → 二零二四年), other numbers
as quantities (10050 → 一万零五十); a lone 2 before a measure word or unit is 两.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from fasttts.text.numwords import zh_cardinal, zh_digits, zh_number

Replacement = Callable[[re.Match[str]], str]

NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
NEG = r"(?P<neg>(?<![0-9A-Za-z-])-)?"
"""A minus sign not glued to a preceding letter or digit (Python's ``\\w`` would also match 汉字)."""
_CJK = r"\u3400-\u4dbf\u4e00-\u9fff"

_MEASURE_WORDS = (
    "个 只 位 本 次 种 条 张 件 把 天 份 名 台 辆 斤 岁 周 层 杯 瓶 双 对 块 口 间 座 家 首 部 篇 句 点钟 小时 分钟 千克 公里 公斤 米 年级 倍 门 颗 棵 匹 头"
).split()

_UNITS = {
    "km/h": "公里每小时",
    "m/s": "米每秒",
    "mph": "英里每小时",
    "km": "公里",
    "m": "米",
    "cm": "厘米",
    "mm": "毫米",
    "kg": "千克",
    "g": "克",
    "mg": "毫克",
    "l": "升",
    "L": "升",
    "ml": "毫升",
    "mL": "毫升",
    "°C": "摄氏度",
    "°F": "华氏度",
    "°": "度",
    "℃": "摄氏度",
    "℉": "华氏度",
    "kb": "千字节",
    "KB": "千字节",
    "kB": "千字节",
    "MB": "兆字节",
    "GB": "吉字节",
    "TB": "太字节",
    "Hz": "赫兹",
    "kHz": "千赫兹",
    "MHz": "兆赫兹",
    "GHz": "吉赫兹",
    "ms": "毫秒",
    "s": "秒",
    "min": "分钟",
    "h": "小时",
}
_UNIT = r"(?P<unit>" + "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True)) + r")(?![A-Za-z])"

_CURRENCIES = {"$": "美元", "€": "欧元", "£": "英镑", "USD": "美元", "EUR": "欧元", "GBP": "英镑", "JPY": "日元"}
_YUAN = ("¥", "￥", "CNY", "RMB", "元")

_PUNCTUATION = {",": "，", "!": "！", "?": "？", ";": "；", ":": "：", "(": "（", ")": "）", ".": "。"}
_FULL_WIDTH = "".join(_PUNCTUATION.values()) + "、“”‘’《》「」"


def _minus(m: re.Match[str]) -> str:
    return "负" if m.group("neg") else ""


def _number(number: str) -> str:
    integer, _, fraction = number.partition(".")
    if len(integer) >= 11 and "," not in integer and not fraction:
        return zh_digits(integer)  # phone and account numbers are read digit by digit
    return zh_number(integer, fraction or None)


def _counted(number: str) -> str:
    """A quantity before a unit or measure word: a lone 2 is 两."""
    return "两" if number == "2" else _number(number)


def _date(m: re.Match[str]) -> str:
    month, day = int(m["month"]), int(m["day"])
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return m.group()
    return f"{zh_digits(m['year'])}年{zh_cardinal(month)}月{zh_cardinal(day)}日"


def _time(m: re.Match[str]) -> str:
    hour, minute = int(m["hour"]), int(m["minute"])
    words = ("两" if hour == 2 else zh_cardinal(hour)) + "点"
    if minute:
        words += ("零" if minute < 10 else "") + zh_cardinal(minute) + "分"
    if m["second"]:
        second = int(m["second"])
        words += ("零" if 0 < second < 10 else "") + zh_cardinal(second) + "秒"
    return words


def _yuan(number: str) -> str:
    """5.25 → 五元二角五分: money in yuan is read with 角 and 分, not 点."""
    integer, _, fraction = number.partition(".")
    if len(fraction) > 2:
        return _number(number) + "元"
    jiao, fen = (int(d) for d in fraction.ljust(2, "0"))
    major = int(integer.replace(",", ""))
    words = _number(integer) + "元" if major or not (jiao or fen) else ""
    if jiao:
        words += zh_cardinal(jiao) + "角"
    elif fen and words:
        words += "零"
    if fen:
        words += zh_cardinal(fen) + "分"
    return words


def _money(m: re.Match[str]) -> str:
    currency = m["cur"]
    if currency in _YUAN:
        return _minus(m) + _yuan(m["num"])
    return _minus(m) + _number(m["num"]) + _CURRENCIES[currency]


def _unit(m: re.Match[str]) -> str:
    return _minus(m) + _counted(m["num"]) + _UNITS[m["unit"]]


def _range(m: re.Match[str]) -> str:
    return f"{_number(m['a'])}到{_number(m['b'])}"


def _punctuation(m: re.Match[str]) -> str:
    return _PUNCTUATION[m["p"]]


RULES: list[tuple[re.Pattern[str], Replacement | str]] = [
    # Dates and years: 2024-03-05, 2024/3/5, 2024年.
    (re.compile(r"(?<!\d)(?P<year>\d{4})([-/.])(?P<month>\d{1,2})\2(?P<day>\d{1,2})(?![\d.])[日号]?"), _date),
    (re.compile(r"(?<!\d)(?P<year>\d{4})(?=\s?年)"), lambda m: zh_digits(m["year"])),
    # Times: 3:45, 15:30:10.
    (re.compile(r"(?<![\d:])(?P<hour>[01]?\d|2[0-3]):(?P<minute>[0-5]\d)(?::(?P<second>[0-5]\d))?(?![\d:])"), _time),
    # Money: ¥100, $5, 5.20元, 5 USD.
    (re.compile(NEG + r"(?P<cur>[$€£¥￥])\s?(?P<num>" + NUM + ")"), _money),
    (re.compile(NEG + r"(?P<num>" + NUM + r")\s?(?P<cur>USD|EUR|GBP|JPY|CNY|RMB)\b"), _money),
    (re.compile(NEG + r"(?P<num>\d+\.\d{1,2})(?P<cur>元)"), _money),
    # Percentages, units, ranges, measure words.
    (re.compile(NEG + r"(?P<num>" + NUM + r")\s?%"), lambda m: f"{_minus(m)}百分之{_number(m['num'])}"),
    (re.compile(NEG + r"(?P<num>" + NUM + r")\s?" + _UNIT), _unit),
    (re.compile(r"(?<![\d.,-])(?P<a>[1-9]\d{0,3}(?:\.\d+)?)\s?[-~～]\s?(?P<b>\d{1,4}(?:\.\d+)?)(?![\d.])"), _range),
    (re.compile(r"(?<![\d.,])2(?![\d.,])(?=\s?(?:" + "|".join(_MEASURE_WORDS) + "))"), "两"),
    # Every other number.
    (re.compile(NEG + r"(?P<num>" + NUM + r")"), lambda m: _minus(m) + _number(m["num"])),
    # Punctuation: ASCII marks touching Chinese become full-width; spaces between Chinese go.
    (re.compile(rf"(?<=[{_CJK}])\s*(?P<p>[,!?;:.()])"), _punctuation),
    (re.compile(rf"(?P<p>[,!?;:()])\s*(?=[{_CJK}])"), _punctuation),
    (re.compile(rf"(?<=[{_CJK}{_FULL_WIDTH}])\s+(?=[{_CJK}{_FULL_WIDTH}])"), ""),
]


def normalize(text: str) -> str:
    """Apply every Chinese rule, in order, to tag-free ``text``."""
    for pattern, replacement in RULES:
        text = pattern.sub(replacement, text)
    return text
