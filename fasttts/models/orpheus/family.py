"""Orpheus in the model registry: a Hugging Face Llama directory whose tokenizer has SNAC codes."""

from __future__ import annotations

import json
from pathlib import Path

from fasttts.errors import ModelLoadError
from fasttts.models.registry import ModelFamily


def detect(root: Path) -> bool:
    """``config.json`` with ``model_type`` ``llama`` and a tokenizer that has Orpheus's first audio
    token ``<custom_token_10>`` (looked up in the tokenizer, not in the directory name)."""
    from fasttts.models.random_llm import load_tokenizer

    config, tokenizer = root / "config.json", root / "tokenizer.json"
    if not (config.is_file() and tokenizer.is_file()):
        return False
    try:
        if json.loads(config.read_text()).get("model_type") != "llama":
            return False
        return load_tokenizer(root).token_to_id("<custom_token_10>") is not None
    except (ValueError, OSError, ModelLoadError):
        return False


FAMILY = ModelFamily(
    name="orpheus",
    detect=detect,
    engine="fasttts.models.orpheus.engine:OrpheusEngine",
    layout="an Orpheus Llama directory (config.json, tokenizer.json with <custom_token_N>, snac/)",
)
