"""Text processing: normalisation, splitting into segments, multi-speaker scripts, chapters."""

from fasttts.text.chapters import (
    Chapter,
    chapters_from_epub,
    chapters_from_markdown,
    chapters_from_text,
    detect_chapters,
)
from fasttts.text.characters import check_characters
from fasttts.text.normalize import detect_language, normalize_text
from fasttts.text.script import ScriptPart, parse_script, validate_role_name
from fasttts.text.split import split_text

__all__ = [
    "Chapter",
    "ScriptPart",
    "chapters_from_epub",
    "chapters_from_markdown",
    "chapters_from_text",
    "check_characters",
    "detect_chapters",
    "detect_language",
    "normalize_text",
    "parse_script",
    "split_text",
    "validate_role_name",
]
