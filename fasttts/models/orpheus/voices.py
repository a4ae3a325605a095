"""Orpheus voices per language, and how a checkpoint's language is chosen.

The fine-tuned checkpoints learned a fixed set of speaker names, written as ``"{voice}: {text}"``
in the prompt; any other name makes the model improvise. The multilingual research release
(canopylabs, 2025-04) has one fine-tuned checkpoint per language (Spanish and Italian share
one), each with its own names. A directory does not say which language it holds, so the
language comes from ``--lang``, else from a ``"language"`` field in the LLM's ``config.json``
(our random-model writer sets it; official releases have none), else English.
"""

from __future__ import annotations

import json
from pathlib import Path

from fasttts.errors import InvalidRequestError

DEFAULT_LANGUAGE = "en"

VOICES: dict[str, tuple[str, ...]] = {
    # English "ft" release, in the reference's order of conversational realism; the first is the default.
    "en": ("tara", "leah", "jess", "leo", "dan", "mia", "zac", "zoe"),
    "fr": ("pierre", "amelie", "marie"),
    "de": ("jana", "thomas", "max"),
    "ko": ("유나", "준서"),
    "hi": ("ऋतिका",),
    "zh": ("长乐", "白芷"),
    "es": ("javi", "sergio", "maria"),
    "it": ("pietro", "giulia", "carlo"),
}
"""Speaker names each checkpoint was fine-tuned on, default voice first."""


def resolve_language(lang: str | None, llm_dir: str | Path) -> str:
    """``lang`` if given, else the ``language`` field of ``llm_dir/config.json``, else English."""
    if lang is None:
        config = Path(llm_dir) / "config.json"
        if config.exists():
            lang = json.loads(config.read_text()).get("language")
    lang = (lang or DEFAULT_LANGUAGE).lower()
    if lang not in VOICES:
        raise InvalidRequestError(f"unknown Orpheus language '{lang}'; choose one of {', '.join(VOICES)}", param="lang")
    return lang


def find_voice(language: str, name: str) -> str | None:
    """The canonical spelling of ``name`` among ``language``'s voices (case-insensitive), or None."""
    wanted = name.strip().casefold()
    return next((v for v in VOICES[language] if v.casefold() == wanted), None)
