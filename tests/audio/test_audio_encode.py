"""Encoders: every format decodes back to the right duration and rate, streamed or not."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from audio_testutil import decode, dominant_frequency, random_chunks, sine

from fasttts.audio.encode import (
    CONTENT_TYPES,
    WAV_STREAMING_SIZE,
    AudioEncoder,
    delivered_rate,
    encode_audio,
    supported_formats,
)
from fasttts.errors import InvalidRequestError

FORMATS = ["mp3", "opus", "aac", "flac", "wav", "pcm"]
LOSSY = ["mp3", "opus", "aac"]
TOLERANCE_S = 0.05


def expected_rate(fmt: str, rate: int) -> int:
    """The decoded rate each format promises (see fasttts.audio.encode's docstring)."""
    if fmt in ("opus", "aac"):
        return 48_000
    if fmt == "mp3":
        return min((r for r in (24_000, 44_100, 48_000) if r >= rate), default=48_000)
    return rate


def decoded_seconds(fmt: str, data: bytes, rate: int) -> tuple[float, int]:
    if fmt == "pcm":
        assert len(data) % 2 == 0
        return len(data) / 2 / rate, rate
    audio, out_rate = decode(data)
    return len(audio) / out_rate, out_rate


def encode_chunked(fmt: str, audio: np.ndarray, rate: int, seed: int, *, to: int | None = None) -> bytes:
    encoder = AudioEncoder(fmt, rate, streaming=True, rate=to)
    parts = [encoder.encode(chunk) for chunk in random_chunks(audio, np.random.default_rng(seed))]
    return b"".join(parts) + encoder.finish()


def speechlike(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    """A sine plus noise, so codecs see some broadband content."""
    noise = np.random.default_rng(seed).standard_normal(round(seconds * rate)).astype(np.float32)
    return sine(seconds, rate, amp=0.4) + 0.05 * noise


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("seconds", [0.3, 1.0, 5.0, 60.0])
@pytest.mark.parametrize("mode", ["one_call", "chunks"])
def test_duration_and_rate_survive(fmt: str, seconds: float, mode: str) -> None:
    rate = 24_000
    audio = speechlike(seconds, rate)
    data = encode_audio(audio, rate, fmt) if mode == "one_call" else encode_chunked(fmt, audio, rate, seed=int(seconds * 10))
    got, out_rate = decoded_seconds(fmt, data, rate)
    assert out_rate == expected_rate(fmt, rate)
    assert abs(got - seconds) <= TOLERANCE_S, f"{fmt} {mode}: decoded {got:.4f} s, expected {seconds} s"


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("rate", [16_000, 22_050, 44_100])
def test_other_model_rates(fmt: str, rate: int) -> None:
    audio = speechlike(1.0, rate)
    for data in (encode_audio(audio, rate, fmt), encode_chunked(fmt, audio, rate, seed=rate)):
        got, out_rate = decoded_seconds(fmt, data, rate)
        assert out_rate == expected_rate(fmt, rate)
        assert abs(got - 1.0) <= TOLERANCE_S


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("model_rate", "to"), [(16_000, 24_000), (22_050, 24_000), (24_000, 16_000), (16_000, 48_000)])
def test_requested_rate_is_what_the_listener_gets(fmt: str, model_rate: int, to: int) -> None:
    """``rate`` resamples once: every container states it (pcm is its bare samples), streamed or not."""
    audio = sine(1.0, model_rate, freq=440.0, amp=0.4)
    whole, chunked = encode_audio(audio, model_rate, fmt, rate=to), encode_chunked(fmt, audio, model_rate, seed=to, to=to)
    assert AudioEncoder(fmt, model_rate, streaming=False, rate=to).output_rate == expected_rate(fmt, to) == delivered_rate(fmt, to)
    for data in (whole, chunked):
        got, out_rate = decoded_seconds(fmt, data, to)
        assert out_rate == expected_rate(fmt, to) and abs(got - 1.0) <= TOLERANCE_S
    if fmt in ("pcm", "wav"):  # lossless: the streamed resample is the whole-file resample, sample for sample
        header = 44 if fmt == "wav" else 0
        assert whole[header:] == chunked[header:] and abs(len(whole[header:]) // 2 - to) <= 1
        samples = np.frombuffer(whole[header:], "<i2").astype(np.float32) / 32767
        assert abs(dominant_frequency(samples, to) - 440.0) <= 2.0


@pytest.mark.parametrize("fmt", FORMATS)
def test_output_rate_attribute_matches_stream(fmt: str) -> None:
    encoder = AudioEncoder(fmt, 22_050, streaming=True)
    assert encoder.output_rate == expected_rate(fmt, 22_050)
    assert encoder.content_type == CONTENT_TYPES[fmt]


def test_pcm_exact_bytes_and_clipping() -> None:
    audio = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -3.0, np.nan], dtype=np.float32)
    data = encode_audio(audio, 24_000, "pcm")
    assert len(data) == 2 * len(audio)
    samples = np.frombuffer(data, dtype="<i2")
    assert samples.tolist() == [0, 16384, -16384, 32767, -32767, 32767, -32767, 0]


def test_pcm_streaming_byte_count_matches_samples() -> None:
    audio = speechlike(1.3, 24_000)
    assert len(encode_chunked("pcm", audio, 24_000, seed=3)) == 2 * len(audio)


def test_wav_header_carries_true_sizes() -> None:
    audio = speechlike(1.0, 22_050)
    data = encode_audio(audio, 22_050, "wav")
    riff, riff_size, wave = struct.unpack_from("<4sI4s", data, 0)
    fmt_id, fmt_size, tag, channels, rate, byte_rate, align, bits = struct.unpack_from("<4sIHHIIHH", data, 12)
    data_id, data_size = struct.unpack_from("<4sI", data, 36)
    assert (riff, wave, fmt_id, data_id) == (b"RIFF", b"WAVE", b"fmt ", b"data")
    assert riff_size == len(data) - 8
    assert data_size == len(data) - 44 == 2 * len(audio)
    assert (fmt_size, tag, channels, rate, byte_rate, align, bits) == (16, 1, 1, 22_050, 44_100, 2, 16)


def test_streaming_wav_uses_placeholder_sizes() -> None:
    encoder = AudioEncoder("wav", 24_000, streaming=True)
    first = encoder.encode(speechlike(0.1, 24_000))
    assert struct.unpack_from("<I", first, 4)[0] == WAV_STREAMING_SIZE
    assert struct.unpack_from("<I", first, 40)[0] == WAV_STREAMING_SIZE
    assert encoder.finish() == b""


def test_streaming_wav_without_audio_still_returns_a_header() -> None:
    assert len(AudioEncoder("wav", 24_000, streaming=True).finish()) == 44


@pytest.mark.parametrize("fmt", LOSSY)
def test_sine_keeps_its_pitch(fmt: str) -> None:
    rate = 24_000
    audio, out_rate = decode(encode_audio(sine(1.0, rate, freq=440.0), rate, fmt))
    assert abs(dominant_frequency(audio, out_rate) - 440.0) <= 3.0


@pytest.mark.parametrize("fmt", LOSSY)
def test_streamed_sine_keeps_its_pitch_and_level(fmt: str) -> None:
    rate = 24_000
    clean = sine(2.0, rate, freq=440.0)
    audio, out_rate = decode(encode_chunked(fmt, clean, rate, seed=7))
    assert abs(dominant_frequency(audio, out_rate) - 440.0) <= 3.0
    middle = audio[len(audio) // 4 : 3 * len(audio) // 4]
    assert abs(np.sqrt(np.mean(middle**2)) - 0.5 / np.sqrt(2)) < 0.05  # no clicks or gaps


@pytest.mark.parametrize("fmt", FORMATS)
def test_streaming_hands_out_bytes_before_finish(fmt: str) -> None:
    encoder = AudioEncoder(fmt, 24_000, streaming=True)
    audio = speechlike(3.0, 24_000)
    early = b"".join(encoder.encode(audio[i : i + 12_000]) for i in range(0, len(audio), 12_000))
    rest = encoder.finish()
    assert len(early) > len(rest)


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac"])
def test_non_streaming_returns_everything_from_finish(fmt: str) -> None:
    encoder = AudioEncoder(fmt, 24_000, streaming=False)
    assert encoder.encode(speechlike(0.5, 24_000)) == b""
    data = encoder.finish()
    assert abs(decoded_seconds(fmt, data, 24_000)[0] - 0.5) <= TOLERANCE_S


def test_unknown_format_is_an_invalid_request() -> None:
    with pytest.raises(InvalidRequestError) as info:
        AudioEncoder("ogg-vorbis", 24_000, streaming=True)
    assert info.value.param == "response_format"


def test_encoder_is_single_use() -> None:
    encoder = AudioEncoder("mp3", 24_000, streaming=True)
    encoder.finish()
    with pytest.raises(RuntimeError):
        encoder.encode(np.zeros(10, np.float32))
    with pytest.raises(RuntimeError):
        encoder.finish()


def test_supported_formats_and_content_types() -> None:
    assert set(supported_formats()) == set(FORMATS) == set(CONTENT_TYPES)
    assert CONTENT_TYPES["mp3"] == "audio/mpeg" and CONTENT_TYPES["opus"] == "audio/ogg"


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("samples", [1, 480])
def test_tiny_clips_still_come_out(fmt: str, samples: int) -> None:
    audio = speechlike(samples / 24_000, 24_000)
    for data in (encode_audio(audio, 24_000, fmt), encode_chunked(fmt, audio, 24_000, seed=samples)):
        got, _ = decoded_seconds(fmt, data, 24_000)
        assert got > 0
        assert abs(got - samples / 24_000) <= TOLERANCE_S
