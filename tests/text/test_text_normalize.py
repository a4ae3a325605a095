"""Normalisation: readable words appear, digits and symbols go, inline tags stay intact."""

import re

import pytest

from fasttts.text import detect_language, normalize_text
from fasttts.text.tags import EMOTION_TAGS

_DIGITS = re.compile(r"\d")


def _has_words(text: str, *phrases: str) -> bool:
    return all(phrase in text for phrase in phrases)


@pytest.mark.parametrize(
    ("text", "phrases"),
    [
        ("I have 3 apples.", ["three apples"]),
        ("It is -5 outside", ["minus five"]),
        ("Pi is 3.14", ["three point one four"]),
        ("There were 1,234,567 people", ["one million two hundred thirty-four thousand five hundred sixty-seven"]),
        ("the 1st, 2nd, 3rd and 21st", ["first", "second", "third", "twenty-first"]),
        ("Born in 1999.", ["nineteen ninety-nine"]),
        ("The 2024 budget", ["twenty twenty-four"]),
        ("Music of the 1990s and the 80s", ["nineteen nineties", "eighties"]),
        ("Agent 007", ["zero zero seven"]),
        ("MP3 files", ["MP three"]),
        ("version 1.2.3", ["one dot two dot three"]),
        ("add 1/2 cup and 3/4 spoon", ["one half", "three quarters"]),
        ("Room #5 and No. 9", ["number five", "number nine"]),
    ],
)
def test_english_numbers(text: str, phrases: list[str]) -> None:
    out = normalize_text(text, "en")
    assert _has_words(out, *phrases), out
    assert not _DIGITS.search(out), out


@pytest.mark.parametrize(
    ("text", "phrases"),
    [
        ("Due 2024-03-05.", ["March fifth, twenty twenty-four"]),
        ("Due 03/05/2024.", ["March fifth, twenty twenty-four"]),
        ("Due 25/12/2023.", ["December twenty-fifth, twenty twenty-three"]),
        ("On March 5, 2024 we met", ["March fifth, twenty twenty-four"]),
        ("On Jan. 1 we met", ["January first"]),
        ("On 5 March 2024 we met", ["the fifth of March, twenty twenty-four"]),
        ("Since June 2021", ["June twenty twenty-one"]),
    ],
)
def test_english_dates(text: str, phrases: list[str]) -> None:
    out = normalize_text(text, "en")
    assert _has_words(out, *phrases), out
    assert not _DIGITS.search(out), out


def test_invalid_iso_date_is_not_read_as_a_date() -> None:
    out = normalize_text("code 2024-13-45", "en")
    assert "Month" not in out and not _DIGITS.search(out)


@pytest.mark.parametrize(
    ("text", "phrases"),
    [
        ("Meet at 3:45 pm.", ["three forty-five P M"]),
        ("Meet at 7 a.m. Then eat.", ["seven A M. Then"]),
        ("Meet at 10:05", ["ten oh five"]),
        ("Meet at 10:00", ["ten o'clock"]),
        ("Meet at 15:00", ["fifteen hundred"]),
        ("Lap 1:02:03", ["one oh two and three seconds"]),
    ],
)
def test_english_times(text: str, phrases: list[str]) -> None:
    out = normalize_text(text, "en")
    assert _has_words(out, *phrases), out
    assert not _DIGITS.search(out), out


@pytest.mark.parametrize(
    ("text", "phrases"),
    [
        ("It costs $5.", ["five dollars"]),
        ("It costs $1.", ["one dollar"]),
        ("It costs $5.20.", ["five dollars and twenty cents"]),
        ("It costs $0.50.", ["fifty cents"]),
        ("It costs €3.", ["three euros"]),
        ("It costs £10.", ["ten pounds"]),
        ("It costs ¥100.", ["one hundred yen"]),
        ("It costs 5 USD.", ["five US dollars"]),
        ("A $5 million deal", ["five million dollars"]),
        ("A $2.5M deal", ["two point five million dollars"]),
        ("Lost -$3 today", ["minus three dollars"]),
    ],
)
def test_english_currency(text: str, phrases: list[str]) -> None:
    out = normalize_text(text, "en")
    assert _has_words(out, *phrases), out
    assert not _DIGITS.search(out) and not re.search(r"[$€£¥]", out), out


@pytest.mark.parametrize(
    ("text", "phrases"),
    [
        ("Up 50%", ["fifty percent"]),
        ("Down -3.5 %", ["minus three point five percent"]),
        ("Drive 5 km", ["five kilometers"]),
        ("Drive 1 km", ["one kilometer"]),
        ("At 100 km/h or 60 mph", ["one hundred kilometers per hour", "sixty miles per hour"]),
        ("Weighs 2.5kg and 300 g and 5 mg", ["two point five kilograms", "three hundred grams", "five milligrams"]),
        ("Pour 2 l and 250 ml", ["two liters", "two hundred fifty milliliters"]),
        ("It is 30°C or 86 °F", ["thirty degrees Celsius", "eighty-six degrees Fahrenheit"]),
        ("Stay 1 h 45 min 10 s", ["one hour", "forty-five minutes", "ten seconds"]),
        ("Took 20 ms", ["twenty milliseconds"]),
        ("Files of 500 MB, 2 GB and 64 kb", ["five hundred megabytes", "two gigabytes", "sixty-four kilobytes"]),
        ("Walked 3 m and 40 cm and 5 mm", ["three meters", "forty centimeters", "five millimeters"]),
    ],
)
def test_english_percentages_and_units(text: str, phrases: list[str]) -> None:
    out = normalize_text(text, "en")
    assert _has_words(out, *phrases), out
    assert not _DIGITS.search(out) and "%" not in out, out


def test_unit_letters_without_a_number_are_left_alone() -> None:
    assert normalize_text("I am here, m and s and h.", "en") == "I am here, m and s and h."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Dr. Smith is here.", "Doctor Smith is here."),
        ("Mr. and Mrs. Jones", "Mister and Missus Jones"),
        ("We saw St. Louis.", "We saw Saint Louis."),
        ("He lives on Main St. now", "He lives on Main Street now"),
        ("Fruit, e.g. apples", "Fruit, for example apples"),
        ("That is, i.e. yes", "That is, that is yes"),
        ("Apples, pears, etc. are fruit", "Apples, pears, et cetera are fruit"),
        ("Apples, pears, etc. Then more", "Apples, pears, et cetera. Then more"),
        ("Tom & Jerry", "Tom and Jerry"),
    ],
)
def test_english_abbreviations(text: str, expected: str) -> None:
    assert normalize_text(text, "en") == expected


def test_ambiguous_abbreviations_are_kept() -> None:
    # "Dr." at the end may be "Drive": no capitalised name follows, so it stays as written.
    assert normalize_text("Turn into Oak Dr.", "en") == "Turn into Oak Dr."


@pytest.mark.parametrize("tag", [f"<{t}>" for t in EMOTION_TAGS] + ["<role:anna>", "<role:Bob 2,pitch=high,speed=low>"])
def test_tags_stay_intact(tag: str) -> None:
    for language in ("en", "zh", None):
        out = normalize_text(f"I have 2 cats {tag} and 3.5% of 10 km", language)
        assert tag in out, (language, out)
        assert not _DIGITS.search(out.replace(tag, "")), (language, out)


def test_tag_contents_are_never_normalised() -> None:
    text = "Costs $5 <role:agent 007, pitch=very_high> 2024-03-05 <laugh>"
    out = normalize_text(text)
    assert "<role:agent 007, pitch=very_high>" in out and out.endswith("<laugh>")


def test_comparisons_are_not_taken_for_tags() -> None:
    out = normalize_text("if 3 < 5 and 6 > 4", "en")
    assert "three < five" in out and "six > four" in out


def test_whitespace_is_collapsed() -> None:
    assert normalize_text("  Hello \t  world  \n\n\n  again  ", "en") == "Hello world\nagain"


def test_full_width_characters_are_read() -> None:
    out = normalize_text("Ｉ ｈａｖｅ ３ ａｐｐｌｅｓ，ｏｋ。", "en")
    assert out == "I have three apples, ok."


@pytest.mark.parametrize(
    ("text", "phrases"),
    [
        ("我有3个苹果", ["三个苹果"]),
        ("我有2个苹果和12个梨", ["两个苹果", "十二个梨"]),
        ("共10050人", ["一万零五十人"]),
        ("圆周率是3.14", ["三点一四"]),
        ("气温-5度", ["负五度"]),
        ("增长了50%", ["百分之五十"]),
        ("下降-2.5%", ["负百分之二点五"]),
        ("2024年3月5日", ["二零二四年三月五日"]),
        ("日期2024-03-05", ["二零二四年三月五日"]),
        ("日期2024/3/5", ["二零二四年三月五日"]),
        ("现在是15:30", ["十五点三十分"]),
        ("现在是2:05:09", ["两点零五分零九秒"]),
        ("价格¥100", ["一百元"]),
        ("价格￥5.20", ["五元二角"]),
        ("价格5.05元", ["五元零五分"]),
        ("价格$5", ["五美元"]),
        ("价格€3和£10", ["三欧元", "十英镑"]),
        ("价格5 USD", ["五美元"]),
        ("跑了5km用了1h", ["五公里", "一小时"]),
        ("重2kg", ["两千克"]),
        ("体温37.5°C", ["三十七点五摄氏度"]),
        ("时速120km/h", ["一百二十公里每小时"]),
        ("需要3-5天", ["三到五天"]),
        ("电话13812345678", ["一三八一二三四五六七八"]),
        ("第1名", ["第一名"]),
        ("有1,000人", ["一千人"]),
    ],
)
def test_chinese(text: str, phrases: list[str]) -> None:
    out = normalize_text(text, "zh")
    assert _has_words(out, *phrases), out
    assert not _DIGITS.search(out) and not re.search(r"[$€£¥￥%]", out), out


def test_chinese_punctuation_is_full_width_and_spaces_between_hanzi_go() -> None:
    assert normalize_text("你好 , 世界 ! 我 爱 你.", "zh") == "你好，世界！我爱你。"
    assert normalize_text("你好，世界！", "zh") == "你好，世界！"


def test_language_detection() -> None:
    assert detect_language("今天天气很好") == "zh"
    assert detect_language("我喜欢用Python编程") == "zh"
    assert detect_language("I met 王小明 yesterday") == "en"
    assert detect_language("<laugh> hello") == "en"
    assert "三个" in normalize_text("我有3个苹果")
    assert "three apples" in normalize_text("I have 3 apples")


def test_language_names_are_accepted() -> None:
    assert normalize_text("3", "English") == "three"
    assert normalize_text("3", "zh-CN") == "三"


def test_unsupported_language_only_tidies_whitespace() -> None:
    assert normalize_text("  Ich  habe 3 Äpfel ", "de") == "Ich habe 3 Äpfel"
