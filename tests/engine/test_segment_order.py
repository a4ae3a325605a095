"""Which segments of one voice run at once: all of them, unless the model says the voice is written
by its first segment (Spark's created voices), and then that one goes first."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from fasttts.engine.base import TTSEngine
from fasttts.models.piper.engine import PiperEngine
from fasttts.params import SamplingParams, SplitParams, VoiceParams

TEXT = "One two three. Four five six. Seven eight nine."
SPLIT = SplitParams(length_threshold=3, window_size=3)
DEADLOCK_GUARD_S = 60  # only reached if segments that must run together ran one after another


class BarrierPiper(PiperEngine):
    """The real Piper engine whose segments each wait until every segment of the request started:
    a request finishes only if its segments run concurrently."""

    expected = 0
    started = 0
    all_started: asyncio.Event

    async def _segment_stream(self, text: str, voice: Any, sampling: SamplingParams, *, stream: bool) -> AsyncIterator[np.ndarray]:
        self.started += 1
        if self.started == self.expected:
            self.all_started.set()
        await self.all_started.wait()
        async for chunk in super()._segment_stream(text, voice, sampling, stream=stream):
            yield chunk


@pytest.mark.parametrize("stream", [False, True])
async def test_segments_of_one_piper_voice_run_concurrently(stream):
    engine = BarrierPiper.load()
    engine.expected = len(engine.segments(TEXT, VoiceParams(name="joe"), SPLIT))
    engine.all_started = asyncio.Event()
    assert engine.expected == 3
    try:
        if stream:
            chunks = await asyncio.wait_for(_drain(engine.speak_stream(TEXT, "joe", split=SPLIT)), DEADLOCK_GUARD_S)
            audio = np.concatenate(chunks)
        else:
            audio = await asyncio.wait_for(engine.speak(TEXT, "joe", split=SPLIT), DEADLOCK_GUARD_S)
    finally:
        await engine.shutdown()
    assert engine.started == 3 and len(audio) > engine.sample_rate


class WrittenVoiceEngine(TTSEngine):
    """A model whose voices are written by their first segment: it records when each segment
    starts and ends."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, str]] = []

    async def _resolve_voice(self, voice: VoiceParams) -> str:
        return voice.name or "created"

    def _first_segment_writes_voice(self, voice: str) -> bool:
        return voice == "created"

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    async def _segment_stream(self, text: str, voice: Any, sampling: SamplingParams, *, stream: bool) -> AsyncIterator[np.ndarray]:
        self.events.append(("start", text))
        await asyncio.sleep(0)  # let every other runnable segment start here if it may
        self.events.append(("end", text))
        yield np.ones(160, dtype=np.float32)


async def test_a_voice_written_by_its_first_segment_waits_for_it():
    engine = WrittenVoiceEngine()
    segments = engine.segments(TEXT, VoiceParams(name="created"), SPLIT)
    await engine.speak(TEXT, "created", split=SPLIT)
    first = segments[0].text
    assert engine.events.index(("end", first)) < min(engine.events.index(("start", s.text)) for s in segments[1:])


async def test_other_voices_of_that_model_do_not_wait():
    engine = WrittenVoiceEngine()
    await engine.speak(TEXT, "named", split=SPLIT)
    starts = [i for i, (kind, _) in enumerate(engine.events) if kind == "start"]
    assert starts == [0, 1, 2]  # all three started before the first one ended


async def _drain(stream: AsyncIterator[np.ndarray]) -> list[np.ndarray]:
    return [chunk async for chunk in stream]
