"""Crafted audio files an attacker could upload: many channels, odd sample formats, absurd rates,
zero-length data and corrupt headers. Built here byte by byte (WAV headers written by hand) or
with PyAV, so each case is exactly what it claims to be.

``hostile()`` maps a case name to its bytes; ``DECODABLE`` names the cases that are valid audio
(they must decode to mono), ``REFUSED`` those that must be refused with a clean error.
"""

from __future__ import annotations

import io
import struct

import av
import numpy as np

PCM, FLOAT, ALAW, MULAW, EXTENSIBLE = 1, 3, 6, 7, 0xFFFE


def wav(
    channels: int = 1,
    rate: int = 16_000,
    bits: int = 16,
    fmt: int = PCM,
    *,
    frames: int = 1_600,
    payload: bytes | None = None,
    block_align: int | None = None,
    data_size: int | None = None,
    fmt_size: int = 16,
) -> bytes:
    """A RIFF/WAVE file with a hand-written ``fmt `` chunk; every field can lie."""
    width = max(bits // 8, 1)
    if payload is None:
        payload = np.random.default_rng(0).integers(0, 256, frames * channels * width, dtype=np.uint8).tobytes()
    align = channels * width if block_align is None else block_align
    fmt_chunk = struct.pack("<HHIIHH", fmt, channels & 0xFFFF, rate & 0xFFFFFFFF, (rate * align) & 0xFFFFFFFF, align & 0xFFFF, bits & 0xFFFF)
    fmt_chunk = fmt_chunk.ljust(fmt_size, b"\0")[:fmt_size] if fmt_size >= 0 else fmt_chunk
    size = len(payload) if data_size is None else data_size
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt_chunk)) + fmt_chunk + b"data" + struct.pack("<I", size & 0xFFFFFFFF) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _pyav(codec: str, muxer: str, layout: str, rate: int = 48_000, seconds: float = 0.5) -> bytes:
    """A real multichannel file encoded by FFmpeg (sine on every channel). The frame is packed
    float (one plane); PyAV converts it to the codec's own sample format."""
    n_channels = av.AudioLayout(layout).nb_channels
    n = int(rate * seconds)
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)).astype(np.float32)
    out = io.BytesIO()
    with av.open(out, "w", format=muxer) as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        interleaved = np.repeat(tone[:, None], n_channels, axis=1).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(interleaved, format="flt", layout=layout)
        frame.sample_rate, frame.pts = rate, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return out.getvalue()


def hostile() -> dict[str, bytes]:
    return {
        # many channels: PyAV crashed (SIGSEGV) on planar audio with 8 or more
        "wav-8ch": wav(8),
        "wav-16ch": wav(16),
        "wav-17ch": wav(17),
        "wav-255ch": wav(255),
        "wav-65535ch": wav(65535, frames=2),
        "wav-0ch": wav(0, payload=b"\0" * 64),
        "flac-7.1": _pyav("flac", "flac", "7.1"),
        "flac-octagonal": _pyav("flac", "flac", "octagonal", rate=96_000),
        "aac-7.1": _pyav("aac", "ipod", "7.1"),
        "opus-7.1": _pyav("libopus", "ogg", "7.1"),
        "wav-f32-8ch": _pyav("pcm_f32le", "wav", "7.1"),
        # odd sample formats
        "wav-u8": wav(bits=8),
        "wav-s24-6ch": wav(6, bits=24),
        "wav-f64": wav(bits=64, fmt=FLOAT, payload=np.array([np.nan, np.inf, -np.inf, 0.5] * 400).tobytes()),
        "wav-f16": wav(bits=16, fmt=FLOAT),
        "wav-alaw-8ch": wav(8, bits=8, fmt=ALAW),
        "wav-mulaw": wav(bits=8, fmt=MULAW),
        "wav-12bit": wav(bits=12),
        "wav-0bit": wav(bits=0),
        "wav-unknown-format": wav(fmt=0x1234),
        "wav-extensible-short": wav(fmt=EXTENSIBLE, fmt_size=18),
        # absurd rates
        "wav-rate-0": wav(rate=0),
        "wav-rate-1": wav(rate=1, frames=4),
        "wav-rate-4G": wav(rate=0xFFFFFFFF),
        "wav-rate-2G-8ch": wav(8, rate=2**31 - 1),
        # zero length and lying sizes
        "wav-no-frames": wav(payload=b""),
        "wav-header-only": wav()[:44],
        "wav-data-size-huge": wav(data_size=0xFFFFFFFF),
        "wav-block-align-0": wav(2, block_align=0),
        "wav-block-align-huge": wav(block_align=0xFFFF),
        "wav-fmt-size-0": wav(fmt_size=0),
        "riff-only": b"RIFF\xff\xff\xff\xffWAVE",
        "truncated-fmt": wav()[:30],
        "garbage-after-riff": b"RIFF" + bytes(range(256)) * 4,
    }


DECODABLE = {
    "wav-8ch",
    "wav-16ch",
    "flac-7.1",
    "flac-octagonal",
    "aac-7.1",
    "opus-7.1",
    "wav-f32-8ch",
    "wav-u8",
    "wav-s24-6ch",
    "wav-f64",
    "wav-alaw-8ch",
    "wav-mulaw",
}
"""Cases that are real audio within the limits: they decode (downmixed to mono)."""

REFUSED = {
    "wav-17ch",
    "wav-255ch",
    "wav-65535ch",
    "wav-0ch",
    "wav-f16",
    "wav-0bit",
    "wav-unknown-format",
    "wav-extensible-short",
    "wav-rate-0",
    "wav-rate-1",
    "wav-rate-4G",
    "wav-rate-2G-8ch",
    "wav-no-frames",
    "wav-header-only",
    "wav-fmt-size-0",
    "riff-only",
    "truncated-fmt",
    "garbage-after-riff",
}
"""Cases that must be refused. The rest (sizes and alignments that lie) FFmpeg reads leniently:
either outcome is fine as long as it is a clean one."""
