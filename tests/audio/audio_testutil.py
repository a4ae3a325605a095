"""Shared helpers for the audio tests: make signals, write files with PyAV, decode bytes back."""

from __future__ import annotations

import io

import av
import numpy as np


def sine(seconds: float, rate: int, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    n = round(seconds * rate)
    return (amp * np.sin(2 * np.pi * freq * np.arange(n) / rate)).astype(np.float32)


def decode(data: bytes) -> tuple[np.ndarray, int]:
    """Decode ``data`` with PyAV: (first channel as float32, sample rate)."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        to_float = av.AudioResampler(format="fltp")
        parts = [f.to_ndarray()[0] for frame in container.decode(stream) for f in to_float.resample(frame)]
        parts += [f.to_ndarray()[0] for f in to_float.resample(None)]
        audio = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        return audio.astype(np.float32), stream.rate


def dominant_frequency(audio: np.ndarray, rate: int) -> float:
    """Frequency (Hz) of the strongest FFT bin of ``audio`` (Hann-windowed)."""
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.argmax(spectrum) * rate / len(audio))


def write_with_pyav(
    channels: np.ndarray,
    rate: int,
    muxer: str,
    codec: str,
    *,
    codec_options: dict[str, str] | None = None,
) -> bytes:
    """Encode (channels, n) float32 audio into a ``muxer`` container with ``codec``."""
    layout = "mono" if channels.shape[0] == 1 else "stereo"
    out = io.BytesIO()
    with av.open(out, "w", format=muxer) as container:
        stream = container.add_stream(codec, rate=rate, layout=layout, options=codec_options or {})
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(channels, np.float32), format="fltp", layout=layout)
        frame.sample_rate = rate
        frame.pts = 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return out.getvalue()


def random_chunks(audio: np.ndarray, rng: np.random.Generator, max_size: int = 3000) -> list[np.ndarray]:
    """Split ``audio`` into consecutive chunks of random sizes (1..max_size samples)."""
    chunks, start = [], 0
    while start < len(audio):
        size = int(rng.integers(1, max_size + 1))
        chunks.append(audio[start : start + size])
        start += size
    return chunks
