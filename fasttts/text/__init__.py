"""Text processing: normalisation, splitting into segments, multi-speaker scripts, chapters."""

from fasttts.text.normalize import normalize_text
from fasttts.text.script import ScriptPart, parse_script
from fasttts.text.split import split_text

__all__ = ["ScriptPart", "normalize_text", "parse_script", "split_text"]
