"""FastTTS: LLM-based text-to-speech engines (Spark-TTS, Orpheus, Piper) behind one async API.

    from fasttts import AutoEngine
    engine = AutoEngine("Spark-TTS-0.5B", backend="torch")
    await engine.start()
    audio = await engine.speak("Hello there.", name="female")   # float32 mono at engine.sample_rate

Heavy modules load on first use, so ``import fasttts`` stays cheap for the API and workers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "AutoEngine",
    "Capabilities",
    "SamplingParams",
    "Settings",
    "SplitParams",
    "TTSEngine",
    "VoiceParams",
]

_LAZY = {
    "AutoEngine": "fasttts.models.registry",
    "TTSEngine": "fasttts.engine.base",
    "Capabilities": "fasttts.engine.base",
    "SamplingParams": "fasttts.params",
    "SplitParams": "fasttts.params",
    "VoiceParams": "fasttts.params",
    "Settings": "fasttts.config",
}

if TYPE_CHECKING:
    from fasttts.config import Settings
    from fasttts.engine.base import Capabilities, TTSEngine
    from fasttts.models.registry import AutoEngine
    from fasttts.params import SamplingParams, SplitParams, VoiceParams


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fasttts' has no attribute {name!r}")
