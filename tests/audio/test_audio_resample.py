"""soxr resampling: lengths, pitch, and streaming identical to one-shot."""

from __future__ import annotations

import numpy as np
import pytest
from audio_testutil import dominant_frequency, random_chunks, sine

from fasttts.audio.resample import StreamResampler, resample


@pytest.mark.parametrize(("src", "dst"), [(24_000, 48_000), (44_100, 16_000), (22_050, 24_000), (8_000, 16_000)])
def test_length_and_pitch(src: int, dst: int) -> None:
    out = resample(sine(1.0, src, freq=440.0), src, dst)
    assert out.dtype == np.float32
    assert abs(len(out) - dst) <= 1
    assert abs(dominant_frequency(out, dst) - 440.0) <= 2.0


def test_equal_rates_is_a_no_op() -> None:
    audio = sine(0.1, 16_000)
    np.testing.assert_array_equal(resample(audio, 16_000, 16_000), audio)


@pytest.mark.parametrize(("src", "dst"), [(24_000, 48_000), (22_050, 48_000), (16_000, 16_000)])
def test_streaming_matches_one_shot(src: int, dst: int) -> None:
    tone = sine(0.7, src)
    audio = tone + 0.1 * np.random.default_rng(0).standard_normal(len(tone)).astype(np.float32)
    stream = StreamResampler(src, dst)
    pieces = [stream.process(chunk) for chunk in random_chunks(audio, np.random.default_rng(1), 900)]
    streamed = np.concatenate([*pieces, stream.flush()])
    np.testing.assert_allclose(streamed, resample(audio, src, dst), atol=1e-5)
