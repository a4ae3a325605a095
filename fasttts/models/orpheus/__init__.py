"""Orpheus-TTS (canopylabs): a Llama LLM writing SNAC 24 kHz codes, with inline emotion tags."""

from fasttts.models.orpheus.engine import OrpheusEngine, detect
from fasttts.models.orpheus.random_model import write_random_orpheus
from fasttts.models.orpheus.voices import VOICES

__all__ = ["VOICES", "OrpheusEngine", "detect", "write_random_orpheus"]
