"""Splitting: nothing lost or duplicated, segments within the window, tags whole, linear counting."""

import random
import re

import pytest

from fasttts.text import split_text
from fasttts.text.tags import TAG_RE


def words(s: str) -> int:
    return len(s.split())


def chars(s: str) -> int:
    return len(s)


def lumpy(s: str) -> int:
    """Not additive (like BPE): a joined text can cost more than its pieces counted apart."""
    return len(s.split()) + len(s) // 25


class Counting:
    """Wraps a counter and records how often and on how much text it was called."""

    def __init__(self, count) -> None:
        self.count, self.calls, self.chars = count, 0, 0

    def __call__(self, s: str) -> int:
        self.calls += 1
        self.chars += len(s)
        return self.count(s)


def _no_space(text: str) -> str:
    return re.sub(r"\s+", "", text)


_WORDS = "the a quick brown fox jumps over lazy dog and then runs far away into night".split()
_HANZI = "今天天气很好我们去公园散步吧你说呢这个问题非常有意思"
_TAGS = ["<laugh>", "<sigh>", "<role:anna>", "<role:Big Bob, pitch=high, speed=low>"]


def _random_text(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(1, 12)):
        kind = rng.random()
        if kind < 0.5:
            sentence = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 25)))
            if rng.random() < 0.4:
                sentence = sentence.replace(" ", ", ", rng.randint(1, 3))
            parts.append(sentence + rng.choice([".", "!", "?", ";", "...", "", "\n"]))
        elif kind < 0.7:
            parts.append("".join(rng.choice(_HANZI) for _ in range(rng.randint(1, 80))) + rng.choice("。！？，、"))
        elif kind < 0.85:
            parts.append("x" * rng.randint(1, 120))  # one long word
        else:
            parts.append(rng.choice(_TAGS))
    return rng.choice([" ", "", "\n"]).join(parts)


def _rejoin(text: str, segments: list[str]) -> str:
    """Join segments with a space where the text had whitespace between them, else with nothing.

    Asserts on the way that the segments are the text's own substrings, in order, separated only by
    whitespace: nothing dropped, duplicated or reordered.
    """
    pos, out = 0, []
    for segment in segments:
        start = text.index(segment, pos)
        gap = text[pos:start]
        assert not gap.strip(), (gap, segment)
        out.append((" " if gap and out else "") + segment)
        pos = start + len(segment)
    assert not text[pos:].strip()
    return "".join(out)


def _check(text: str, segments: list[str], count, window: int) -> None:
    assert _no_space(_rejoin(text, segments)) == _no_space(text)
    assert sorted(TAG_RE.findall(text)) == sorted(t for s in segments for t in TAG_RE.findall(s))
    for segment in segments:
        assert segment and segment == segment.strip()
        if count(segment) > window:  # only an atom that cannot be cut may exceed the window
            assert len(segment) == 1 or TAG_RE.fullmatch(segment), (segment, window)


@pytest.mark.parametrize("count", [words, chars, lumpy], ids=["words", "chars", "lumpy"])
@pytest.mark.parametrize("window", [1, 3, 8, 20, 50])
def test_random_texts_keep_every_character_and_respect_the_window(count, window: int) -> None:
    rng = random.Random(window)
    for _ in range(60):
        text = _random_text(rng)
        segments = split_text(text, count, length_threshold=window, window_size=window)
        _check(text, segments, count, window)


@pytest.mark.parametrize("window", [2, 5, 12])
def test_word_counter_reproduces_the_words_in_order(window: int) -> None:
    rng = random.Random(7)
    for _ in range(50):
        text = _random_text(rng)
        segments = split_text(text, words, length_threshold=window, window_size=window)
        assert _rejoin(text, segments).split() == text.split()


def test_short_text_is_one_segment_counted_once() -> None:
    counter = Counting(words)
    assert split_text("  Hello there, world.  ", counter, length_threshold=5, window_size=2) == ["Hello there, world."]
    assert counter.calls == 1


def test_blank_text_gives_no_segments() -> None:
    assert split_text(" \n\t ", words) == []


def test_sentences_are_packed_greedily() -> None:
    text = "One two three. Four five. Six seven eight nine. Ten."
    assert split_text(text, words, length_threshold=3, window_size=5) == [
        "One two three. Four five.",
        "Six seven eight nine. Ten.",
    ]


def test_decimals_and_thousands_are_not_sentence_or_clause_boundaries() -> None:
    assert split_text("Pay 3.14 now. Go.", words, length_threshold=1, window_size=3) == ["Pay 3.14 now.", "Go."]
    assert split_text("We had 1,000 cats, then dogs", words, length_threshold=1, window_size=4) == [
        "We had 1,000 cats,",
        "then dogs",
    ]


def test_mixed_sentence_boundaries() -> None:
    text = "Hi there. 你好世界。Yes please!\nNo thanks; ok? 再见！"
    assert split_text(text, chars, length_threshold=5, window_size=13) == [
        "Hi there.",
        "你好世界。",
        "Yes please!",
        "No thanks;",
        "ok? 再见！",
    ]


def test_long_sentence_is_cut_at_commas_then_spaces() -> None:
    text = "alpha beta gamma, delta epsilon, zeta eta theta iota kappa lambda"
    assert split_text(text, words, length_threshold=3, window_size=3) == [
        "alpha beta gamma,",
        "delta epsilon,",
        "zeta eta theta",
        "iota kappa lambda",
    ]


def test_chinese_without_spaces_is_cut_at_characters_keeping_closing_punctuation() -> None:
    text = "一二三四五六七八九十。"
    segments = split_text(text, chars, length_threshold=4, window_size=4)
    assert "".join(segments) == text
    assert all(len(s) <= 4 for s in segments)
    assert not segments[-1].startswith("。")


def test_tags_are_never_cut() -> None:
    tag = "<role:Big Bob, pitch=high, speed=low>"
    text = f"Hello {tag} there, friend. <laugh> Bye."
    for window in (1, 2, 5, 10):
        for count in (words, chars):
            segments = split_text(text, count, length_threshold=1, window_size=window)
            assert tag in segments or any(tag in s for s in segments)
            assert sum(s.count("<laugh>") for s in segments) == 1


def _long_english(rng: random.Random, size: int) -> str:
    sentences = []
    while sum(map(len, sentences)) < size:
        sentence = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 30)))
        sentences.append(sentence.capitalize().replace(" ", ", ", 1) + ". ")
    return "".join(sentences)


@pytest.mark.parametrize("count", [words, chars, lumpy], ids=["words", "chars", "lumpy"])
def test_a_chapter_is_counted_in_linear_time(count) -> None:
    text = _long_english(random.Random(1), 50_000)
    counter = Counting(count)
    segments = split_text(text, counter, length_threshold=50, window_size=50)
    _check(text, segments, count, 50)
    # Each sentence, clause or word is counted a bounded number of times, and the text handed to the
    # counter in total is a small multiple of the chapter (quadratic splitting would be ~1000x).
    assert counter.calls <= 3 * len(text.split())
    assert counter.chars <= 8 * len(text)


def test_unpunctuated_chinese_chapter_is_counted_in_linear_time() -> None:
    rng = random.Random(2)
    text = "".join(rng.choice(_HANZI) for _ in range(50_000))
    counter = Counting(chars)
    segments = split_text(text, counter, length_threshold=50, window_size=50)
    assert "".join(segments) == text and all(len(s) <= 50 for s in segments)
    assert len(segments) == 1000  # an exact counter packs every window full
    assert counter.calls <= 12 * len(segments)
    assert counter.chars <= 20 * len(text)
