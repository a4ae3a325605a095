"""Time-stretching through FFmpeg's atempo: exact durations over OpenAI's speed range, the pitch
kept, a chunked stream equal to the whole clip, and factors outside the range refused."""

from __future__ import annotations

import math

import numpy as np
import pytest
from audio_testutil import dominant_frequency, random_chunks, sine

from fasttts.audio.tempo import STAGE_RANGE, TempoStretcher, atempo_stages, time_stretch

SR = 22050


@pytest.mark.parametrize("factor", [0.25, 0.5, 0.8, 1.25, 2.0, 3.0, 4.0])
def test_duration_is_exact_and_pitch_is_kept(factor: float) -> None:
    x = sine(2.0, SR, freq=180.0, amp=0.3)
    y = time_stretch(x, SR, factor)
    assert len(y) == round(len(x) / factor)
    assert abs(dominant_frequency(y, SR) - 180.0) < 3.0  # a resampling speed-up would move it to 180 x factor
    assert np.sqrt(np.mean(y[len(y) // 4 : -len(y) // 4] ** 2)) > 0.15  # audio, not silence


@pytest.mark.parametrize("factor", [0.25, 0.7, 2.0, 4.0])
def test_chunked_stream_equals_the_whole_clip(factor: float) -> None:
    x = sine(1.5, SR, freq=180.0, amp=0.3) + 0.01 * np.random.default_rng(0).standard_normal(int(1.5 * SR)).astype(np.float32)
    stretcher = TempoStretcher(SR, factor)
    parts = [stretcher.process(c) for c in random_chunks(x, np.random.default_rng(1), max_size=5000)]
    parts.append(stretcher.flush())
    np.testing.assert_array_equal(np.concatenate(parts), time_stretch(x, SR, factor))


@pytest.mark.parametrize("factor", [0.25, 0.3, 0.5, 1.0, 1.9, 2.0, 2.5, 4.0])
def test_stages_stay_in_atempo_blending_range(factor: float) -> None:
    stages = atempo_stages(factor)
    assert math.isclose(math.prod(stages), factor, rel_tol=1e-9)
    assert all(STAGE_RANGE[0] - 1e-9 <= s <= STAGE_RANGE[1] + 1e-9 for s in stages)
    assert len(stages) == max(1, math.ceil(abs(math.log2(factor)) - 1e-9))


@pytest.mark.parametrize("factor", [0.2, 4.5, 0.0])
def test_factors_outside_the_openai_range_are_refused(factor: float) -> None:
    with pytest.raises(ValueError, match="tempo factor"):
        TempoStretcher(SR, factor)
