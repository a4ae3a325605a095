"""Multi-speaker scripts: ``<role:NAME>`` tags switch the speaking voice mid-text.

Grammar (one tag, case-insensitive ``role``)::

    <role:NAME>
    <role:NAME,pitch=LEVEL>
    <role:NAME,pitch=LEVEL,speed=LEVEL>      (attributes in any order, spaces allowed)

``NAME`` is a stored or built-in voice name (see :func:`validate_role_name`); ``LEVEL`` is one of
:data:`fasttts.params.LEVELS`. Attributes are always ``key=value``; unknown keys, unknown levels,
repeated keys and bare values are rejected with :class:`~fasttts.errors.InvalidRequestError`
(``param="text"``) rather than guessed at. Text before the first tag is spoken by the default
role; a tag followed by no text is dropped. Any other tag (``<laugh>``) is ordinary text here.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from fasttts.errors import InvalidRequestError
from fasttts.params import LEVELS
from fasttts.text.tags import ROLE_TAG_RE

MAX_ROLE_NAME_LENGTH = 64
_ATTRIBUTES = ("pitch", "speed")


@dataclass(frozen=True)
class ScriptPart:
    """One stretch of text spoken by one role, with optional pitch/speed levels."""

    role: str
    text: str
    pitch: str | None = None
    speed: str | None = None


def _invalid(message: str, param: str = "text") -> InvalidRequestError:
    return InvalidRequestError(message, param=param)


def _role_name_problem(name: str) -> str | None:
    if not name:
        return "role name is empty"
    if len(name) > MAX_ROLE_NAME_LENGTH:
        return f"role name is longer than {MAX_ROLE_NAME_LENGTH} characters"
    if "/" in name or "\\" in name or ".." in name or name.startswith("."):
        return f"role name {name!r} must not contain '/', '\\', '..' or start with '.'"
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in name):
        return f"role name {name!r} contains control characters"
    if any(ch in "<>," for ch in name):
        return f"role name {name!r} must not contain '<', '>' or ','"
    return None


def validate_role_name(name: str, param: str = "text") -> str:
    """Return ``name`` stripped, or raise if it cannot safely name a voice.

    Voice names end up in storage keys and in role tags, so path tricks, control characters and
    the tag syntax characters ``<``, ``>`` and ``,`` are refused. ``param`` is the request field
    the error names (the HTTP layer passes its own, e.g. ``"name"``).
    """
    name = name.strip()
    problem = _role_name_problem(name)
    if problem:
        raise _invalid(problem, param)
    return name


def _parse_tag(body: str) -> tuple[str, str | None, str | None]:
    """``"anna, pitch=high"`` → ``("anna", "high", None)``."""
    name, *attributes = body.split(",")
    role = validate_role_name(name)
    values: dict[str, str] = {}
    for attribute in attributes:
        key, sep, value = (part.strip() for part in attribute.partition("="))
        if not sep:
            raise _invalid(f"role tag <role:{body}>: attribute {attribute.strip()!r} must be key=value")
        if key not in _ATTRIBUTES:
            raise _invalid(f"role tag <role:{body}>: unknown attribute {key!r} (use {' or '.join(_ATTRIBUTES)})")
        if key in values:
            raise _invalid(f"role tag <role:{body}>: attribute {key!r} given twice")
        if value not in LEVELS:
            raise _invalid(f"role tag <role:{body}>: {key} must be one of {', '.join(LEVELS)}, not {value!r}")
        values[key] = value
    return role, values.get("pitch"), values.get("speed")


def parse_script(text: str, default_role: str) -> list[ScriptPart]:
    """Cut ``text`` at role tags into parts, in order; parts with no text are dropped."""
    parts: list[ScriptPart] = []
    role, pitch, speed = default_role, None, None
    pos = 0
    for match in ROLE_TAG_RE.finditer(text):
        chunk = text[pos : match.start()].strip()
        if chunk:
            parts.append(ScriptPart(role, chunk, pitch, speed))
        role, pitch, speed = _parse_tag(match.group(1))
        pos = match.end()
    chunk = text[pos:].strip()
    if chunk:
        parts.append(ScriptPart(role, chunk, pitch, speed))
    return parts
