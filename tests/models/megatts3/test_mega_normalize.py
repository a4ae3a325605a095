"""MegaTTS3's text normalisation: WeTextProcessing's as the reference calls it (the ``mega`` extra),
FastTTS's own without it; and where the two agree and differ on the same inputs."""

from __future__ import annotations

import logging
import re
import unicodedata

import pytest

from fasttts.models.megatts3 import normalize as mega_normalize
from fasttts.text import normalize_text

# both spell these the same, up to case, hyphens, spacing and punctuation width
AGREE_EN = [
    "I have 3 apples.",
    "It is 12.5 kg.",
    "About 50% of people.",
    "The year 1999 was odd.",
    "He was 1st, she was 22nd.",
    "We need 3/4 cup.",
    "Hello there.",
]
AGREE_ZH = [
    "我有3个苹果。",
    "今天是2024年3月5日。",
    "现在是下午3点45分。",
    "大约50%的人。",
    "气温是-3°C。",
    "第3章",
    "他跑了100米。",
    "你好，世界。",
    "一共1234567人。",
]
DIFFER = {  # input: (FastTTS's own, WeTextProcessing's), as each reads it
    "It costs $5.20.": ("five dollars and twenty cents", "five point two dollars"),
    "On Jan. 5, 2024 we left.": ("January fifth, twenty twenty-four", "the fifth of january , twenty twenty four"),
    "He lives at 221 Baker St.": ("two hundred twenty-one", "two twenty one"),
    "It's -3 degrees.": ("minus three", "negative three"),
    "Version 2.0 ships.": ("two point zero", "two point oh"),
    "I have 1,234,567 coins.": ("five hundred sixty-seven", "five hundred and sixty seven"),
    "价格是12.5元。": ("十二元五角", "十二点五元"),
    "电话是13812345678。": ("一三八一二", "幺三八幺二"),
    "比分是3:2。": ("三：二", "三比二"),
}


def canonical(text: str) -> str:
    text = "".join(" " if unicodedata.category(c).startswith("P") else c for c in text.lower())
    return re.sub(r"\s+", " ", text).strip()


def test_the_log_names_the_normaliser_that_runs(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(mega_normalize, "_LOADED", [])  # load afresh, as a new process does
    with caplog.at_level(logging.INFO, logger=mega_normalize.__name__):
        tools = mega_normalize.wetext()
        again = mega_normalize.wetext()
    (message,) = [r.getMessage() for r in caplog.records if r.name == mega_normalize.__name__]  # loaded once
    assert ("WeTextProcessing 1." in message) if tools is not None else ("FastTTS's own" in message and "'mega' extra" in message)
    assert again is tools


@pytest.fixture(scope="module")
def reference():
    """WeTextProcessing's normalisers, configured as ``tts/infer_cli.py`` configures them."""
    pytest.importorskip("tn.english.normalizer", reason="the 'mega' extra (WeTextProcessing) is not installed")
    from tn.chinese.normalizer import Normalizer as ZhNormalizer
    from tn.english.normalizer import Normalizer as EnNormalizer

    return ZhNormalizer(overwrite_cache=False, remove_erhua=False, remove_interjections=False), EnNormalizer(overwrite_cache=False)


@pytest.mark.parametrize("text", AGREE_EN + AGREE_ZH + list(DIFFER))
def test_a_line_is_normalised_as_the_reference(reference, text: str) -> None:
    zh, en = reference
    assert mega_normalize.normalize(text) == (zh if re.search(r"[\u4e00-\u9fff]", text) else en).normalize(text)


def test_lines_are_normalised_one_by_one(reference) -> None:
    """The reference's English grammar drops line breaks, gluing the sentences either side, and
    fails on a leading one; each line is normalised alone and the breaks stay (the splitter ends
    sentences there)."""
    zh, en = reference
    text = "Line 1 has 3 words.\n\nLine 2 has 4.\r\nThe end."
    assert "words.Line two" in en.normalize(text)
    with pytest.raises(Exception, match="Operation failed"):
        en.normalize("\n" + text)
    assert mega_normalize.normalize(text) == "\n".join(en.normalize(line) if line else "" for line in text.splitlines())
    assert mega_normalize.normalize("第1章\n我有2个。") == zh.normalize("第1章") + "\n" + zh.normalize("我有2个。")


@pytest.mark.parametrize("text", AGREE_EN + AGREE_ZH)
def test_where_ours_and_wetextprocessing_agree(reference, text: str) -> None:
    language = "zh" if text in AGREE_ZH else "en"
    theirs = mega_normalize.normalize(text)
    assert canonical(normalize_text(text, language=language)) == canonical(theirs)
    assert not re.search(r"\d", theirs)


@pytest.mark.parametrize("text", list(DIFFER))
def test_where_ours_and_wetextprocessing_differ(reference, text: str) -> None:
    """Both spell the number out, differently: what a MegaTTS3 voice says without the extra."""
    language = "zh" if re.search(r"[\u4e00-\u9fff]", text) else "en"
    ours, theirs = normalize_text(text, language=language), mega_normalize.normalize(text)
    said_by_ours, said_by_theirs = DIFFER[text]
    assert said_by_ours in ours and said_by_theirs in theirs
    assert not re.search(r"\d", ours) and not re.search(r"\d", theirs)
