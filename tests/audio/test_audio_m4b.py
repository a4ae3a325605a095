"""M4B audiobooks: chapters come back with their titles and start times, audio with its length."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
from audio_testutil import decode, sine

from fasttts.audio.m4b import read_chapters, write_m4b

RATE = 24_000
TITLES = ["Chapter One", "Zwei – Ünïcödé", "The End"]
LENGTHS_S = [1.5, 2.25, 1.0]


def chapters() -> list[tuple[str, np.ndarray]]:
    return [(t, sine(s, RATE, freq=220.0 * (i + 1))) for i, (t, s) in enumerate(zip(TITLES, LENGTHS_S))]


def check_chapters(found: list[tuple[str, float, float]]) -> None:
    assert [title for title, _, _ in found] == TITLES
    starts = np.cumsum([0.0, *LENGTHS_S[:-1]])
    ends = np.cumsum(LENGTHS_S)
    np.testing.assert_allclose([start for _, start, _ in found], starts, atol=0.002)
    np.testing.assert_allclose([end for _, _, end in found], ends, atol=0.002)


def test_three_chapters_to_a_path(tmp_path) -> None:
    path = tmp_path / "book.m4b"
    write_m4b(chapters(), RATE, path, title="A Book")
    check_chapters(read_chapters(path))
    with av.open(str(path)) as container:
        assert container.metadata.get("title") == "A Book"
        assert container.streams.audio[0].codec_context.name == "aac"
    audio, rate = decode(path.read_bytes())
    assert rate == RATE
    assert abs(len(audio) / rate - sum(LENGTHS_S)) <= 0.05


def test_three_chapters_to_a_buffer() -> None:
    buffer = io.BytesIO()
    write_m4b(chapters(), RATE, buffer)
    buffer.seek(0)
    check_chapters(read_chapters(buffer))


def test_each_chapter_holds_its_own_audio(tmp_path) -> None:
    """The tone that dominates each chapter's time span is the one written for that chapter."""
    path = tmp_path / "tones.m4b"
    write_m4b(chapters(), RATE, path)
    audio, rate = decode(path.read_bytes())
    for index, (_, start, end) in enumerate(read_chapters(path)):
        span = audio[int((start + 0.1) * rate) : int((end - 0.1) * rate)]
        spectrum = np.abs(np.fft.rfft(span * np.hanning(len(span))))
        assert abs(np.argmax(spectrum) * rate / len(span) - 220.0 * (index + 1)) <= 5.0


def test_no_chapters_is_an_error(tmp_path) -> None:
    with pytest.raises(ValueError):
        write_m4b([], RATE, tmp_path / "empty.m4b")
