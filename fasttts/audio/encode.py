"""Streaming audio encoders: float32 mono in, container bytes out, for every response format.

One :class:`AudioEncoder` per response. In streaming mode each :meth:`AudioEncoder.encode` call
returns the bytes that are ready, so the HTTP layer can send them at once; in non-streaming mode
the whole file comes from :meth:`AudioEncoder.finish`, and headers carry true sizes.

Formats and why they are built the way they are:

* ``pcm``: raw signed 16-bit little-endian samples, no header; nothing in the bytes says the
  rate, so a caller that must meet a fixed one (OpenAI's 24 kHz) asks for it with ``rate``.
* ``wav``: a 44-byte RIFF header (written here with :mod:`struct`: PyAV's wav muxer needs a
  seekable output to fix its sizes) followed by ``pcm``. Streamed WAV cannot know its length up
  front, so it uses the conventional placeholder ``0xFFFFFFFF`` for both the RIFF and the data
  size ("read until end of stream"), which FFmpeg, browsers and most players accept.
* ``rate``: the rate the listener should get (default: the input's). Audio is resampled to it
  once, with a stateful soxr stream, so a streamed response equals the whole file sample for
  sample; containers then state the rate they hold.
* ``mp3`` (LAME), ``opus`` (in Ogg), ``aac`` (ADTS), ``flac``: PyAV. Some formats are encoded
  at a rate of their own (exposed as ``AudioEncoder.output_rate``), resampled with a stateful
  soxr stream so chunk boundaries never click. Opus only runs at 48 kHz. AAC runs at 48 kHz
  because ADTS cannot signal the encoder's 1024-sample priming delay: 21 ms at 48 kHz, but
  43-64 ms of extra leading silence at 16-24 kHz. MP3 runs at 24, 44.1 or 48 kHz (the lowest
  that is not below the input rate): a streamed MP3 cannot signal LAME's end padding (at least
  1152 samples, rounded up to a frame), which stays within 50 ms only at those rates. Codecs
  with fixed frame sizes get exact frames from PyAV (its encoder feeds an FFmpeg frame-size
  buffer that passes a short last frame through).
* In streaming mode the muxer writes into a sink that hands bytes out as soon as they are
  written. The sink is seekable, so MP3 gets its Xing/LAME frame (which tells decoders to drop
  the encoder delay); the trailer's back-patches of that frame (frame count, sizes) land on bytes
  already sent and are dropped, which leaves a valid frame with the counts unknown. This is safe
  only for muxers whose header placeholders are valid on their own: mp3, flac, ogg, adts.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field
from typing import cast

import av
import numpy as np

from fasttts.audio.resample import StreamResampler
from fasttts.errors import InvalidRequestError

CONTENT_TYPES: dict[str, str] = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}
"""MIME type of each response format (:data:`fasttts.params.RESPONSE_FORMATS`)."""

WAV_STREAMING_SIZE = 0xFFFFFFFF
"""RIFF and data size written in a streamed WAV header: "unknown, read to end of stream"."""


def supported_formats() -> list[str]:
    """The response formats :class:`AudioEncoder` can produce."""
    return list(CONTENT_TYPES)


@dataclass(frozen=True)
class _CodecSpec:
    """How one PyAV-backed format is muxed and encoded."""

    muxer: str
    codec: str
    bit_rate: int | None
    rates: tuple[int, ...] | None = None  # rates we encode at; None: the input's
    codec_options: dict[str, str] = field(default_factory=dict)
    streaming_options: dict[str, str] = field(default_factory=dict)


_PYAV_FORMATS: dict[str, _CodecSpec] = {
    # LAME quality 5 (of 0 best .. 9 fastest) keeps speech clean at a fraction of q0's cost.
    "mp3": _CodecSpec("mp3", "libmp3lame", 64_000, (24_000, 44_100, 48_000), codec_options={"compression_level": "5"}),
    # 100 ms Ogg pages: early first bytes without paying a page header per 20 ms packet.
    "opus": _CodecSpec("ogg", "libopus", 48_000, (48_000,), streaming_options={"page_duration": "100000"}),
    "aac": _CodecSpec("adts", "aac", 64_000, (48_000,), codec_options={"aac_coder": "fast"}),
    "flac": _CodecSpec("flac", "flac", None),
}


def _to_s16(audio: np.ndarray) -> np.ndarray:
    """float32 in [-1, 1] -> little-endian int16 (clipped first, so overs cannot wrap around)."""
    return np.rint(np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2")


def wav_header(data_size: int, sample_rate: int) -> bytes:
    """44-byte RIFF/WAVE header for 16-bit mono PCM; ``data_size`` in bytes, or the placeholder."""
    riff_size = WAV_STREAMING_SIZE if data_size == WAV_STREAMING_SIZE else 36 + data_size
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        riff_size,
        b"WAVE",
        b"fmt ",
        16,
        1,
        1,
        sample_rate,
        sample_rate * 2,
        2,
        16,
        b"data",
        data_size,
    )  # fmt fields: PCM, 1 channel, rate, byte rate, block align, bits per sample


class _PcmWriter:
    """``pcm`` and ``wav``: 16-bit samples, with or without a RIFF header."""

    def __init__(self, sample_rate: int, rate: int, *, wav: bool, streaming: bool) -> None:
        self.output_rate = rate
        self._resampler = StreamResampler(sample_rate, rate)
        self._wav = wav
        self._streaming = streaming
        self._header_sent = not (wav and streaming)
        self._parts: list[bytes] = []

    def _header(self) -> bytes:
        if self._header_sent:
            return b""
        self._header_sent = True
        return wav_header(WAV_STREAMING_SIZE, self.output_rate)

    def encode(self, audio: np.ndarray) -> bytes:
        data = _to_s16(self._resampler.process(audio)).tobytes()
        if self._streaming:
            return self._header() + data
        self._parts.append(data)
        return b""

    def finish(self) -> bytes:
        tail = _to_s16(self._resampler.flush()).tobytes()
        if self._streaming:
            return self._header() + tail
        data = b"".join(self._parts) + tail
        self._parts.clear()
        return (wav_header(len(data), self.output_rate) if self._wav else b"") + data


class _StreamSink:
    """Muxer output that hands bytes out as soon as they are written (see module docstring).

    Seeking back and rewriting is supported while the bytes are still held; writes that land on
    bytes already taken are dropped.
    """

    def __init__(self) -> None:
        self._held = bytearray()
        self._taken = 0  # absolute offset of _held[0]
        self._pos = 0

    def write(self, data: bytes | memoryview) -> int:
        data = bytes(data)
        size = len(data)
        start = self._pos - self._taken
        if start < 0:
            data = data[-start:]
            start = 0
        if start > len(self._held):
            self._held.extend(bytes(start - len(self._held)))
        self._held[start : start + len(data)] = data
        self._pos += size
        return size

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        end = self._taken + len(self._held)
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: end}[whence]
        self._pos = base + offset
        return self._pos

    def take(self) -> bytes:
        """Return and release every byte written so far."""
        out = bytes(self._held)
        self._taken += len(out)
        self._held.clear()
        return out


class _PyAVWriter:
    """``mp3``, ``opus``, ``aac``, ``flac`` through PyAV."""

    def __init__(self, spec: _CodecSpec, sample_rate: int, rate: int, *, streaming: bool) -> None:
        codec = av.Codec(spec.codec, "w")
        self.output_rate = _encode_rate(rate, spec.rates)
        self._resampler = StreamResampler(sample_rate, self.output_rate)
        self._sink: _StreamSink | io.BytesIO = _StreamSink() if streaming else io.BytesIO()
        options = {"flush_packets": "1", **spec.streaming_options} if streaming else {}
        self._container = av.open(self._sink, "w", format=spec.muxer, options=options)
        # an audio codec's name (the spec table's) gives an audio stream; PyAV types only literal names
        self._stream = cast(av.AudioStream, self._container.add_stream(spec.codec, rate=self.output_rate, layout="mono", options=dict(spec.codec_options)))
        formats = [f.name for f in codec.audio_formats or ()]
        self._format = next((f for f in ("fltp", "flt", "s16", "s16p") if f in formats), "s16")
        self._stream.codec_context.format = self._format
        if spec.bit_rate:
            self._stream.codec_context.bit_rate = spec.bit_rate
        self._pts = 0

    def _write(self, audio: np.ndarray) -> None:
        if not len(audio):
            return
        samples = audio if self._format.startswith("flt") else _to_s16(audio)
        frame = av.AudioFrame.from_ndarray(samples[None, :], format=self._format, layout="mono")
        frame.sample_rate = self.output_rate
        frame.pts = self._pts
        self._pts += len(audio)
        self._container.mux(self._stream.encode(frame))

    def encode(self, audio: np.ndarray) -> bytes:
        self._write(self._resampler.process(audio))
        return self._sink.take() if isinstance(self._sink, _StreamSink) else b""

    def finish(self) -> bytes:
        self._write(self._resampler.flush())
        self._container.mux(self._stream.encode(None))
        self._container.close()
        return self._sink.take() if isinstance(self._sink, _StreamSink) else self._sink.getvalue()


def _encode_rate(rate: int, allowed: tuple[int, ...] | None) -> int:
    """The lowest allowed rate not below ``rate`` (else the highest); ``rate`` if any is allowed."""
    if allowed is None:
        return rate
    return min((r for r in allowed if r >= rate), default=max(allowed))


def delivered_rate(fmt: str, rate: int) -> int:
    """The rate a listener decodes when ``fmt`` is asked for at ``rate`` (``AudioEncoder.output_rate``)."""
    spec = _PYAV_FORMATS.get(fmt)
    return _encode_rate(rate, spec.rates) if spec else rate


class AudioEncoder:
    """Encodes one response: feed float32 mono chunks, then call :meth:`finish` exactly once.

    ``streaming=True``: every :meth:`encode` returns the bytes ready so far (possibly ``b""``;
    codecs hold back a little look-ahead), and :meth:`finish` returns the rest.
    ``streaming=False``: :meth:`encode` returns ``b""`` and :meth:`finish` the whole file, with
    true sizes in every header. ``rate`` is the rate asked for (default ``sample_rate``);
    ``output_rate`` the rate the listener will decode (48 kHz for opus and aac, mp3's nearest
    rate, otherwise ``rate``).
    """

    def __init__(self, fmt: str, sample_rate: int, *, streaming: bool, rate: int | None = None) -> None:
        if fmt not in CONTENT_TYPES:
            raise InvalidRequestError(
                f"unsupported audio format {fmt!r}; choose one of {', '.join(CONTENT_TYPES)}",
                param="response_format",
            )
        if sample_rate <= 0 or (rate is not None and rate <= 0):
            raise ValueError(f"sample rates must be positive, got {sample_rate} and {rate}")
        rate = rate or sample_rate
        self.format = fmt
        self.content_type = CONTENT_TYPES[fmt]
        self.sample_rate = sample_rate
        self._writer: _PcmWriter | _PyAVWriter = (
            _PcmWriter(sample_rate, rate, wav=fmt == "wav", streaming=streaming)
            if fmt in ("pcm", "wav")
            else _PyAVWriter(_PYAV_FORMATS[fmt], sample_rate, rate, streaming=streaming)
        )
        self.output_rate = self._writer.output_rate
        self._finished = False

    def encode(self, chunk: np.ndarray) -> bytes:
        """Encode the next chunk of float32 mono audio; returns the bytes ready now."""
        if self._finished:
            raise RuntimeError("AudioEncoder.encode() called after finish()")
        audio = np.asarray(chunk, dtype=np.float32).reshape(-1)
        audio = np.clip(np.nan_to_num(audio, nan=0.0), -1.0, 1.0)
        return self._writer.encode(audio)

    def finish(self) -> bytes:
        """Flush the encoder and muxer: every remaining frame and the container trailer."""
        if self._finished:
            raise RuntimeError("AudioEncoder.finish() called twice")
        self._finished = True
        return self._writer.finish()


def encode_audio(audio: np.ndarray, sample_rate: int, fmt: str, *, rate: int | None = None) -> bytes:
    """Encode a whole clip at once (non-streaming: headers carry the true sizes), at ``rate`` if given."""
    encoder = AudioEncoder(fmt, sample_rate, streaming=False, rate=rate)
    return encoder.encode(audio) + encoder.finish()
