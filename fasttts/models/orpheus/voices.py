"""Orpheus voices per language, and how a checkpoint's language is chosen.

The fine-tuned checkpoints learned a fixed set of speaker names, written as ``"{voice}: {text}"``
in the prompt; any other name makes the model improvise. The multilingual research release
(canopylabs, 2025-04) has one fine-tuned checkpoint per language (Spanish and Italian share
one), each with its own names. A directory does not say which language it holds, so the
language comes from ``--lang``, else from a ``"language"`` field in the LLM's ``config.json``
(our random-model writer sets it; official releases have none), else English.

A checkpoint trained without speaker names (the pretrained one) is prompted with the text alone.
A request asks for that with the voice :data:`NO_VOICE`; a ``config.json`` whose ``"voices"``
field is an empty list declares that the model has no voices, so every request gets it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


NO_VOICE = "none"
"""The voice name meaning "no speaker name in the prompt: the text alone"."""


def _config(llm_dir: str | Path) -> dict[str, Any]:
    config = Path(llm_dir) / "config.json"
    return json.loads(config.read_text()) if config.exists() else {}


def declared_voices(language: str, llm_dir: str | Path) -> tuple[str, ...]:
    """The checkpoint's speaker names: a ``"voices"`` list in ``config.json`` if it has one (empty:
    none), else those the ``language``'s fine-tuned release was trained on."""
    voices = _config(llm_dir).get("voices")
    if voices is None:
        return VOICES[language]
    if not isinstance(voices, list) or not all(isinstance(v, str) and v.strip() for v in voices):
        raise InvalidRequestError(f"{llm_dir}/config.json: voices must be a list of names", param="model_path")
    return tuple(voices)


def resolve_language(lang: str | None, llm_dir: str | Path) -> str:
    """``lang`` if given, else the ``language`` field of ``llm_dir/config.json``, else English."""
    if lang is None:
        lang = _config(llm_dir).get("language")
    lang = (lang or DEFAULT_LANGUAGE).lower()
    if lang not in VOICES:
        raise InvalidRequestError(f"unknown Orpheus language '{lang}'; choose one of {', '.join(VOICES)}", param="lang")
    return lang


def find_voice(voices: tuple[str, ...], name: str) -> str | None:
    """The canonical spelling of ``name`` among ``voices`` (case-insensitive), or None."""
    wanted = name.strip().casefold()
    return next((v for v in voices if v.casefold() == wanted), None)
