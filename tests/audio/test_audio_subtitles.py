"""SRT and WebVTT captions: timestamps, numbering, escaping, bad input."""

from __future__ import annotations

import pytest

from fasttts.audio.subtitles import format_timestamp, write_subtitles
from fasttts.errors import InvalidRequestError


@pytest.mark.parametrize(
    ("seconds", "srt", "vtt"),
    [
        (0.0, "00:00:00,000", "00:00:00.000"),
        (1.5, "00:00:01,500", "00:00:01.500"),
        (61.25, "00:01:01,250", "00:01:01.250"),
        (3661.007, "01:01:01,007", "01:01:01.007"),
        (59.9996, "00:01:00,000", "00:01:00.000"),
        (36_000.0, "10:00:00,000", "10:00:00.000"),
    ],
)
def test_timestamps(seconds: float, srt: str, vtt: str) -> None:
    assert format_timestamp(seconds, "srt") == srt
    assert format_timestamp(seconds, "vtt") == vtt


SEGMENTS = [(0.0, 1.25, "Hello there."), (1.25, 2.0, "   "), (2.0, 4.5, "Second\n\nline & <b>")]


def test_srt_layout() -> None:
    assert write_subtitles(SEGMENTS, "srt") == ("1\n00:00:00,000 --> 00:00:01,250\nHello there.\n\n2\n00:00:02,000 --> 00:00:04,500\nSecond\nline & <b>\n")


def test_vtt_layout_and_escaping() -> None:
    assert write_subtitles(SEGMENTS, "vtt") == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.250\nHello there.\n\n00:00:02.000 --> 00:00:04.500\nSecond\nline &amp; &lt;b>\n"
    )


def test_vtt_text_cannot_fake_a_timing_line() -> None:
    assert "a --&gt; b" in write_subtitles([(0.0, 1.0, "a --> b")], "vtt")


def test_empty_input_gives_an_empty_document() -> None:
    assert write_subtitles([], "srt") == ""
    assert write_subtitles([], "vtt") == "WEBVTT\n\n"


def test_bad_timing_and_format() -> None:
    with pytest.raises(ValueError):
        write_subtitles([(2.0, 1.0, "backwards")], "srt")
    with pytest.raises(InvalidRequestError):
        write_subtitles(SEGMENTS, "ass")
