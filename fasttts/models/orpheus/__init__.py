"""Orpheus-TTS (canopylabs): a Llama LLM writing SNAC 24 kHz codes, with inline emotion tags.

The engine is :class:`fasttts.models.orpheus.engine.OrpheusEngine`; importing this package
loads nothing heavy (the registry imports ``family.py`` to detect a directory).
"""
