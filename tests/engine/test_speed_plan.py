"""TTSEngine.speed_plan: a speed is met natively where a model's level matches it, time-stretched
otherwise; through a whole request the stretch gives exact durations and a stream equals the file."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest

from fasttts.engine.base import Capabilities, TTSEngine
from fasttts.params import LEVEL_TEMPO, LEVELS, SamplingParams, VoiceParams

RATE = 16000


class ToneEngine(TTSEngine):
    """One second of a 200 Hz tone per segment; records the native speed level each segment got."""

    sample_rate = RATE
    default_voice = "tone"

    def __init__(self, *, native_speed: bool) -> None:
        super().__init__()
        self.capabilities = Capabilities(speed=native_speed)
        self.levels: list[str | None] = []

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    async def _resolve_voice(self, voice: VoiceParams) -> str | None:
        return voice.speed

    async def _segment_stream(self, text: str, voice: str | None, sampling: SamplingParams, *, stream: bool) -> AsyncIterator[np.ndarray]:
        self.levels.append(voice)
        tone = (0.3 * np.sin(2 * np.pi * 200 * np.arange(RATE) / RATE)).astype(np.float32)
        for part in np.array_split(tone, 4 if stream else 1):
            yield part


@pytest.mark.parametrize("level", LEVELS)
def test_a_tempo_matching_a_level_is_that_level_on_native_models(level: str) -> None:
    plan = ToneEngine(native_speed=True).speed_plan(VoiceParams(name="tone", tempo=LEVEL_TEMPO[level]))
    assert (plan.speed, plan.tempo) == (level, None)


def test_other_tempi_are_stretched_and_levels_too_without_native_speed() -> None:
    native, stretched = ToneEngine(native_speed=True), ToneEngine(native_speed=False)
    assert (native.speed_plan(VoiceParams(tempo=2.0)).speed, native.speed_plan(VoiceParams(tempo=2.0)).tempo) == (None, 2.0)
    assert (native.speed_plan(VoiceParams(speed="high")).speed, native.speed_plan(VoiceParams(speed="high")).tempo) == ("high", None)
    for level in LEVELS:
        plan = stretched.speed_plan(VoiceParams(speed=level))
        assert plan.speed is None and plan.tempo == (None if level == "moderate" else LEVEL_TEMPO[level])
    for engine in (native, stretched):
        for voice in (VoiceParams(tempo=0.5), VoiceParams(speed="low"), VoiceParams(tempo=1.2), VoiceParams()):
            once = engine.speed_plan(voice)
            assert engine.speed_plan(once) is once  # idempotent: every path may apply it


@pytest.mark.parametrize("native_speed", [True, False])
async def test_requests_are_stretched_exactly_streamed_or_not(native_speed: bool) -> None:
    engine = ToneEngine(native_speed=native_speed)
    text = "one two three. four five six."
    normal = await engine.speak(text)
    for tempo in (0.5, 2.0, 4.0):
        whole = await engine.speak(text, tempo=tempo)
        streamed = np.concatenate([c async for c in engine.speak_stream(text, tempo=tempo)])
        assert abs(len(whole) * tempo / len(normal) - 1.0) < 0.01
        np.testing.assert_array_equal(streamed, whole)
    await engine.speak(text, tempo=LEVEL_TEMPO["high"])
    assert engine.levels[-1] == ("high" if native_speed else None)
