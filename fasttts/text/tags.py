"""Inline tags that travel inside the text: Orpheus emotion tags and multi-speaker role tags.

Normalisation must leave them byte-for-byte intact, the splitter must never cut one in half and the
script parser turns role tags into speaker changes. They live here, in one place, so the three
agree on what a tag is.
"""

from __future__ import annotations

import re

EMOTION_TAGS: tuple[str, ...] = ("laugh", "chuckle", "sigh", "cough", "sniffle", "groan", "yawn", "gasp")
"""Orpheus' paralinguistic tags, written ``<laugh>`` etc. in the text."""

TAG_RE = re.compile(r"<[A-Za-z][^<>\n]*>")
"""Any angle-bracket tag that starts with a letter: ``<laugh>``, ``<role:anna,pitch=high>``.

A ``<`` followed by a space or digit (``3 < 5``) is a comparison, not a tag.
"""

ROLE_TAG_RE = re.compile(r"<role:([^<>\n]*)>", re.IGNORECASE)
"""A speaker change; group 1 is ``NAME[,key=value...]``."""

EMOTION_TAG_RE = re.compile(r"<(?:" + "|".join(EMOTION_TAGS) + r")>", re.IGNORECASE)


def is_speech_tag(tag: str) -> bool:
    """True for an emotion or role tag (worth keeping when stripping markup from documents)."""
    return bool(EMOTION_TAG_RE.fullmatch(tag) or ROLE_TAG_RE.fullmatch(tag))


def split_on_tags(text: str) -> list[tuple[str, bool]]:
    """Cut ``text`` into ``(piece, is_tag)`` pairs whose concatenation is ``text``."""
    pieces: list[tuple[str, bool]] = []
    pos = 0
    for match in TAG_RE.finditer(text):
        if match.start() > pos:
            pieces.append((text[pos : match.start()], False))
        pieces.append((match.group(), True))
        pos = match.end()
    if pos < len(text):
        pieces.append((text[pos:], False))
    return pieces
