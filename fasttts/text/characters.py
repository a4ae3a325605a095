"""Characters no text to speak may hold: control characters and lone UTF-16 surrogates.

They are never speech, and downstream code cannot take them (Piper's phonemizer raises on NUL;
a lone surrogate cannot even be encoded as UTF-8, so it breaks logs, JSON and the database).
Refusing them up front turns what used to be a 500 into a 4xx naming the field and the position.
"""

from __future__ import annotations

import re

from fasttts.errors import InvalidRequestError

_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
"""C0 controls except tab, line feed and carriage return; DEL; the surrogate range."""


def check_characters(text: str, param: str = "text") -> str:
    """``text`` unchanged, or :class:`InvalidRequestError` naming the first forbidden character."""
    match = _FORBIDDEN.search(text)
    if match is not None:
        code = ord(match.group())
        kind = "a lone surrogate" if 0xD800 <= code <= 0xDFFF else "a control character"
        raise InvalidRequestError(f"{param}: contains {kind} (U+{code:04X}) at position {match.start()}", param=param)
    return text
