"""check_characters: control characters and lone surrogates are refused naming code point and position."""

from __future__ import annotations

import re

import pytest

from fasttts.errors import InvalidRequestError
from fasttts.text import check_characters


@pytest.mark.parametrize(
    ("text", "code", "position"),
    [
        ("a\x00b", "U+0000", 1),
        ("\ud800", "U+D800", 0),
        ("ok \udfff", "U+DFFF", 3),
        ("x\x1b[31m", "U+001B", 1),
        ("del\x7f", "U+007F", 3),
    ],
)
def test_refused(text: str, code: str, position: int) -> None:
    with pytest.raises(InvalidRequestError, match=re.escape(f"({code}) at position {position}")) as e:
        check_characters(text, "input")
    assert e.value.param == "input"


def test_ordinary_text_passes_unchanged() -> None:
    text = "tab\tline\nreturn\r ok ünïcödé 你好 😀 — “quotes”"
    assert check_characters(text) == text
