"""Decode user-supplied audio (reference clips for voice cloning) into float32 mono.

Input is untrusted, so decoding is fenced in: the caller's caps are checked before and while
decoding (a huge file is never fully decoded), only a list of audio container demuxers is allowed
(no playlists or other formats that open further URLs or files, no exotic demuxers that would
"find" audio in random bytes), paths are opened by Python rather than handed to FFmpeg as URLs,
and every PyAV error becomes an :class:`~fasttts.errors.AudioDecodeError` that says what was
wrong.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np

from fasttts.audio.resample import resample
from fasttts.errors import AudioDecodeError, PayloadTooLargeError

ALLOWED_DEMUXERS = "wav,w64,aiff,au,caf,flac,mp3,aac,ogg,mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,asf"
"""FFmpeg demuxers load_audio accepts: every common audio container, nothing that follows links."""

DURATION_SLACK_S = 0.05
"""Allowance over ``max_seconds`` for codec padding (e.g. an MP3 frame), so a clip cut at the
limit is not rejected for a few milliseconds of encoder delay."""

TRUNCATED_FRACTION = 0.9
"""A file whose decodable audio is shorter than this share of its declared duration is treated
as truncated rather than silently returned in part."""

MAX_CHANNELS = 16
"""Most channels a clip may have (9.1.6 surround is 16). More is no recording anyone clones a voice
from, and the decoded size grows with every channel."""

SAMPLE_RATES = (1_000, 768_000)
"""Sample rates accepted (the top is that of studio converters). Outside them is a crafted header,
and a tiny rate would turn a few bytes into hours of audio once resampled."""


def load_audio(
    data: bytes | str | Path,
    target_rate: int,
    *,
    max_seconds: float | None = None,
    max_bytes: int | None = None,
) -> np.ndarray:
    """Decode ``data`` (encoded bytes or a file path) to float32 mono at ``target_rate``.

    Raises :class:`AudioDecodeError` for anything that is not decodable audio (empty, garbage,
    truncated, no audio stream) and :class:`PayloadTooLargeError` when the input is over
    ``max_bytes`` or its audio is longer than ``max_seconds``.
    """
    source, size = _open_source(data)
    with source:
        if max_bytes is not None and size > max_bytes:
            raise PayloadTooLargeError(f"audio is {size} bytes, over the limit of {max_bytes} bytes", param="audio")
        if size == 0:
            raise AudioDecodeError("audio is empty (0 bytes)", param="audio")
        try:
            with av.open(source, "r", options={"format_whitelist": ALLOWED_DEMUXERS}, metadata_errors="ignore") as container:
                audio, rate = _decode(container, max_seconds)
        except (av.FFmpegError, OSError, ValueError, EOFError) as exc:
            raise AudioDecodeError(
                f"could not decode audio: not a readable audio file in a supported format "
                f"(wav, flac, mp3, ogg, opus, m4a/aac, webm) or the file is corrupt ({exc})",
                param="audio",
            ) from exc
    return resample(audio, rate, target_rate)


def _open_source(data: bytes | str | Path) -> tuple[BinaryIO, int]:
    """A readable binary file object and its size; paths are opened here, never by FFmpeg."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
        return io.BytesIO(raw), len(raw)
    try:
        file = open(os.fspath(data), "rb")
    except OSError as exc:
        raise AudioDecodeError(f"cannot read audio file {data}: {exc.strerror}", param="audio") from exc
    return file, os.fstat(file.fileno()).st_size


def _declared_seconds(container: av.container.InputContainer, stream: av.AudioStream) -> float | None:
    """Duration from the container's metadata, when it states one."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _decode(container: av.container.InputContainer, max_seconds: float | None) -> tuple[np.ndarray, int]:
    """Decode the first audio stream to mono float32; returns (audio, sample rate)."""
    if not container.streams.audio:
        kinds: list[str] = sorted({s.type for s in container.streams}) or ["no"]
        raise AudioDecodeError(
            f"the {container.format.name} file has no audio stream (found {', '.join(kinds)} streams)",
            param="audio",
        )
    stream = container.streams.audio[0]
    declared = _declared_seconds(container, stream)
    if max_seconds is not None and declared is not None and declared > max_seconds + DURATION_SLACK_S:
        raise PayloadTooLargeError(f"audio is {declared:.2f} s long; the limit is {max_seconds:g} s", param="audio")

    _check_stream(stream)
    # Packed float keeps the layout and rate and puts every channel in one plane: PyAV's
    # to_ndarray on planar audio with 8 or more channels reads past its plane table (SIGSEGV).
    to_packed_float = av.AudioResampler(format="flt")
    pieces: list[np.ndarray] = []
    samples, rate = 0, 0  # the rate is taken from decoded frames, not trusted from the header

    def keep(frames: list[av.AudioFrame]) -> None:
        nonlocal samples, rate
        for packed in frames:
            # (n, channels); non-finite samples only come from corrupt float files: make them silent
            interleaved: np.ndarray = packed.to_ndarray().reshape(-1, packed.layout.nb_channels)
            interleaved = np.nan_to_num(interleaved, nan=0.0, posinf=0.0, neginf=0.0)
            pieces.append(interleaved.mean(axis=1, dtype=np.float32))
            samples, rate = samples + interleaved.shape[0], packed.sample_rate
            if max_seconds is not None and samples / rate > max_seconds + DURATION_SLACK_S:
                raise PayloadTooLargeError(f"audio is longer than the limit of {max_seconds:g} s", param="audio")

    for packet in container.demux(stream):
        for frame in packet.decode():
            _check_frame(frame)
            keep(to_packed_float.resample(frame))
    keep(to_packed_float.resample(None))

    if samples == 0:
        raise AudioDecodeError(
            f"no audio could be decoded from the {container.format.name} file (empty or truncated)",
            param="audio",
        )
    decoded = samples / rate
    if declared is not None and decoded < TRUNCATED_FRACTION * declared - DURATION_SLACK_S:
        raise AudioDecodeError(
            f"the {container.format.name} file looks truncated: it declares {declared:.2f} s of audio but only {decoded:.2f} s could be decoded",
            param="audio",
        )
    return np.concatenate(pieces), rate


def _check_shape(channels: int, rate: int, where: str) -> None:
    if not 0 < channels <= MAX_CHANNELS:
        raise AudioDecodeError(f"{where} has {channels} channels; 1 to {MAX_CHANNELS} are accepted", param="audio")
    low, high = SAMPLE_RATES
    if not low <= rate <= high:
        raise AudioDecodeError(f"{where} has a sample rate of {rate} Hz; {low} to {high} Hz are accepted", param="audio")


def _check_stream(stream: av.AudioStream) -> None:
    """Refuse channel counts and rates no real clip has before any decoder or converter sees them."""
    context = stream.codec_context
    if context is None:  # FFmpeg found the stream but has no decoder for its codec
        raise AudioDecodeError("the audio stream uses a codec that cannot be decoded", param="audio")
    _check_shape(context.channels, context.sample_rate, "the audio stream")


def _check_frame(frame: av.AudioFrame) -> None:
    """A decoder may change the shape mid-stream (e.g. a crafted Ogg chain): check every frame too."""
    _check_shape(frame.layout.nb_channels, frame.sample_rate, "a decoded audio frame")
