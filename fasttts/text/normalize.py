"""Text normalisation: turn what people write into what a TTS model should say.

LLM-based TTS models read digits, symbols and abbreviations unreliably ("$5.20", "3:45 pm",
"2024年"), so the server spells them out before tokenising. The work per language lives in
:mod:`fasttts.text.normalize_en` and :mod:`fasttts.text.normalize_zh` as ordered tables of
``(regex, replacement)`` rules; this module picks the language, shields inline tags
(``<laugh>``, ``<role:anna,pitch=high>``) from every rule and tidies whitespace.

Whitespace: runs of spaces/tabs become one space, any run containing a line break becomes a
single ``\\n`` (line breaks are sentence boundaries for the splitter), and the ends are stripped.
Languages other than English and Chinese get only the width and whitespace clean-up.
"""

from __future__ import annotations

import re

from fasttts.text import normalize_en, normalize_zh
from fasttts.text.tags import TAG_RE, split_on_tags

_CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_RE = re.compile(r"[A-Za-z]")
_LINE_BREAK_SPACE_RE = re.compile(r"[ \t\f\v\u00a0\u3000]*\n\s*")
_SPACE_RE = re.compile(r"[ \t\f\v\u00a0\u3000]+")

# Full-width ASCII variants (！ to ～) sit at a fixed offset from ASCII; U+2212 is the minus sign.
_WIDTH_TABLE = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {0x3000: 0x20, 0x2212: ord("-")}


def detect_language(text: str) -> str:
    """``"zh"`` when CJK characters dominate (one character ≈ one word), else ``"en"``.

    A Chinese character carries about as much as a short English word, so Chinese wins when there
    are at least half as many CJK characters as Latin letters.
    """
    text = TAG_RE.sub(" ", text)
    cjk = len(_CJK_RE.findall(text))
    return "zh" if cjk and 2 * cjk >= len(_LATIN_RE.findall(text)) else "en"


def _language_code(language: str | None, text: str) -> str:
    if language is None:
        return detect_language(text)
    code = language.strip().lower().replace("_", "-")
    if code in ("chinese", "mandarin") or code.startswith(("zh", "cmn")):
        return "zh"
    if code == "english" or code.startswith("en"):
        return "en"
    return code


def collapse_whitespace(text: str) -> str:
    """Collapse space runs to one space and line-break runs to one ``\\n``; strip the ends."""
    return _SPACE_RE.sub(" ", _LINE_BREAK_SPACE_RE.sub("\n", text)).strip()


def normalize_text(text: str, language: str | None = None) -> str:
    """Spell out numbers, dates, times, money, units and abbreviations for ``language``.

    ``language`` is ``"en"``/``"zh"`` (or names such as ``"english"``, ``"zh-CN"``); ``None``
    detects it from the text. Inline tags and everything inside them are left exactly as written.
    """
    code = _language_code(language, text)
    rules = {"en": normalize_en.normalize, "zh": normalize_zh.normalize}.get(code)
    out = []
    for piece, is_tag in split_on_tags(text):
        if is_tag:
            out.append(piece)
            continue
        piece = piece.translate(_WIDTH_TABLE)
        out.append(rules(piece) if rules else piece)
    return collapse_whitespace("".join(out))
