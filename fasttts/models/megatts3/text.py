"""MegaTTS3's segment splitting, equal to ``chunk_text_english`` and ``chunk_text_chinesev2`` of
``tts/utils/text_utils/split_text.py``: English packs sentence pieces up to 130 UTF-8 bytes,
Chinese cuts near 60 CJK characters at the best punctuation within 30 characters ahead, else the
last one behind, then full-width punctuation."""

from __future__ import annotations

import re

_EN_BREAK = re.compile(r"(?<=[;:,.!?])\s+|(?<=[；：，。！？])")
_CJK = re.compile(r"[\u4e00-\u9fff]")
_MARKS = ("。.！!？?", "，,；;：", "、…—-~～")
_FULL_WIDTH = {".": "。", ",": "，", "!": "！", "?": "？", ";": "；", ":": "："}


def chunk_english(text: str, max_bytes: int = 130) -> list[str]:
    chunks: list[str] = []
    current = ""
    for piece in _EN_BREAK.split(text):
        spaced = piece + " " if piece and len(piece[-1].encode("utf-8")) == 1 else piece
        if len(current.encode("utf-8")) + len(piece.encode("utf-8")) <= max_bytes:
            current += spaced
        else:
            if current:
                chunks.append(current.strip())
            current = spaced
    if current:
        chunks.append(current.strip())
    return chunks


def chunk_chinese(text: str, limit: int = 60, look_ahead: int = 30) -> list[str]:
    result: list[str] = []
    chunk: list[str] = []
    count = 0
    i = 0
    while i < len(text):
        chunk.append(text[i])
        if _CJK.match(text[i]):
            count += 1
        if count >= limit:
            found = False
            for marks in _MARKS:
                for k in range(1, min(look_ahead, len(text) - i)):  # ahead
                    if text[i + k] in marks:
                        result.append("".join(chunk) + text[i + 1 : i + k + 1])
                        chunk, count, i, found = [], 0, i + k, True
                        break
                if found:
                    break
                for j in range(len(chunk) - 1, -1, -1):  # behind
                    if chunk[j] in marks:
                        result.append("".join(chunk[: j + 1]))
                        chunk = chunk[j + 1 :]
                        count = sum(1 for c in chunk if _CJK.match(c))
                        found = True
                        break
                if found:
                    break
            if not found:
                result.append("".join(chunk))
                chunk, count = [], 0
        i += 1
    if chunk:
        result.append("".join(chunk))
    return ["".join(_FULL_WIDTH.get(c, c) for c in r) for r in result]


def is_chinese(text: str) -> bool:
    """Decided by script (Han or kana present), not by langdetect (which sends short English to
    the Chinese path)."""
    return bool(re.search(r"[\u4e00-\u9fff\u3040-\u30ff]", text))


def chunk_text(text: str) -> list[str]:
    pieces = chunk_chinese(text) if is_chinese(text) else chunk_english(text)
    return [p for p in pieces if p.strip()]
