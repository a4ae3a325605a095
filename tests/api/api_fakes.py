"""Test doubles and helpers for the HTTP tests: a scriptable fake engine, tones, decoding."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import av
import numpy as np

from fasttts.audio.encode import encode_audio
from fasttts.engine.base import Capabilities, TTSEngine
from fasttts.errors import GenerationError, NotFoundError
from fasttts.params import SamplingParams, VoiceParams


@dataclass(frozen=True)
class FakeVoice:
    freq: float
    pitch: str | None
    speed: str | None


class FakeEngine(TTSEngine):
    """A deterministic sine-wave engine that honours the whole TTSEngine contract.

    Magic words in the text script failures: ``FAILNOW`` (before any audio), ``FAILMIDWAY`` (after
    the first chunk), ``CRASHNOW`` (a bug: a plain RuntimeError). ``chunk_delay`` slows each chunk (disconnect and concurrency tests);
    ``chunks_per_segment`` sets how many chunks a segment yields. It records what reached it, so
    tests assert the fields a route passed on: ``requested_voices`` (every voice as
    ``_resolve_voice`` received it) and ``spoken`` (every segment's text and resolved sampling).
    """

    model_type = "fake"
    sample_rate = 16000
    capabilities = Capabilities(clone=True, create=True, pitch=True, speed=True)
    default_voice = "female"
    BUILTIN = {"female": 220.0, "male": 110.0}

    def __init__(self, *, chunk_delay: float = 0.0, chunks_per_segment: int = 3, fix_voice: bool = False) -> None:
        super().__init__(seed=0)
        self.chunk_delay = chunk_delay
        self.chunks_per_segment = chunks_per_segment
        self.fix_voice = fix_voice
        self.voices: dict[str, dict[str, Any]] = {}
        self.add_voice_calls = 0
        self.freeze_calls = 0
        self.started = asyncio.Event()
        self.start_gate: asyncio.Event | None = None
        self.cancelled = 0
        self.cancelled_seen = threading.Event()  # set with the first cancellation (any thread may wait)
        self.requested_voices: list[VoiceParams] = []
        self.spoken: list[tuple[str, SamplingParams]] = []

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def list_voices(self) -> list[str]:
        return [*self.BUILTIN, *sorted(v for v in self.voices if v not in self.BUILTIN)]

    async def pin_voice(self, voice: VoiceParams, *, seed: int | None = None) -> dict[str, Any] | None:
        """Counts encodes (``add_voice_calls``) and created voices made (``freeze_calls``)."""
        if voice.state is not None:
            return voice.state
        if voice.reference_audio is not None:
            self.add_voice_calls += 1
            return {"freq": 300.0 + len(voice.reference_audio) % 200, "text": voice.reference_text}
        if voice.gender is not None:
            self.freeze_calls += 1
            return {"freq": self.BUILTIN[voice.gender] * 1.5, "text": None}
        await self._resolve_voice(voice)
        return self.voices.get(voice.name or self.default_voice)

    async def add_voice(self, name: str, reference_audio: bytes, reference_text: str | None = None) -> dict[str, Any]:
        state = await self.pin_voice(VoiceParams(reference_audio=reference_audio, reference_text=reference_text))
        assert state is not None
        self.voices[name] = state
        return state

    def load_voice(self, name: str, state: dict[str, Any]) -> None:
        self.voices[name] = state

    def remove_voice(self, name: str) -> None:
        if self.voices.pop(name, None) is None:
            raise NotFoundError(f"voice '{name}' not found", param="voice")

    async def freeze_voice(self, name: str, voice: VoiceParams, *, seed: int | None = None) -> dict[str, Any]:
        state = await self.pin_voice(VoiceParams(gender=voice.gender or "female"), seed=seed)
        assert state is not None
        self.voices[name] = state
        return state

    async def start(self) -> None:
        if self.start_gate is not None:
            await self.start_gate.wait()
        if self.fix_voice:
            for gender in self.BUILTIN:
                if gender not in self.voices:
                    await self.freeze_voice(gender, VoiceParams(gender=gender))
        self.started.set()

    async def _resolve_voice(self, voice: VoiceParams) -> FakeVoice:
        self.requested_voices.append(voice)
        if voice.state is not None:
            return FakeVoice(voice.state["freq"], voice.pitch, voice.speed)
        if voice.reference_audio is not None:
            return FakeVoice(400.0, voice.pitch, voice.speed)
        name = voice.name or voice.gender or self.default_voice
        if name in self.voices:
            return FakeVoice(self.voices[name]["freq"], voice.pitch, voice.speed)
        if name in self.BUILTIN:
            return FakeVoice(self.BUILTIN[name], voice.pitch, voice.speed)
        raise NotFoundError(f"voice '{name}' not found", param="voice")

    async def _segment_stream(self, text: str, voice: FakeVoice, sampling: SamplingParams, *, stream: bool) -> AsyncIterator[np.ndarray]:
        self.spoken.append((text, sampling))
        if "CRASHNOW" in text:
            raise RuntimeError("an unexpected bug")
        if "FAILNOW" in text:
            raise GenerationError("the fake model produced no audio (FAILNOW)")
        n = 1600 * max(1, len(text.split()))
        t = np.arange(n) / self.sample_rate
        audio = (0.3 * np.sin(2 * np.pi * voice.freq * t)).astype(np.float32)
        try:
            for i, piece in enumerate(np.array_split(audio, self.chunks_per_segment)):
                if i and "FAILMIDWAY" in text:
                    raise GenerationError("the fake model failed midway (FAILMIDWAY)")
                if self.chunk_delay:
                    await asyncio.sleep(self.chunk_delay)
                yield piece
        except (asyncio.CancelledError, GeneratorExit):
            self.cancelled += 1
            self.cancelled_seen.set()
            raise


def tone(seconds: float = 1.0, rate: int = 16000, fmt: str = "wav") -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return encode_audio((0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), rate, fmt)


def decode(data: bytes) -> tuple[np.ndarray, int]:
    """Decode any container with PyAV: (mono float32 samples, rate)."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        frames = [f.to_ndarray() for f in container.decode(stream)]
        rate = stream.rate or stream.codec_context.sample_rate
    audio = np.concatenate([f.reshape(f.shape[0], -1).mean(axis=0) if f.ndim == 2 and f.shape[0] <= 8 else f.reshape(-1) for f in frames])
    return audio.astype(np.float32), rate


def decode_pcm(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768
