"""Sample-rate conversion with soxr (high quality), one-shot and streaming.

Everything in FastTTS that changes a sample rate goes through here, so quality and the
float32/mono convention are decided once. The streaming form keeps soxr's filter state across
chunks: resampling chunk by chunk then sounds the same as resampling the whole, with no clicks
at chunk boundaries.
"""

from __future__ import annotations

import numpy as np
import soxr

QUALITY = "HQ"
"""soxr quality preset: 20-bit precision, far beyond what 16-bit output or a TTS model needs."""


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample mono float32 ``audio`` from ``from_rate`` to ``to_rate`` (no-op when equal)."""
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    if from_rate == to_rate or len(audio) == 0:
        return audio
    return np.asarray(soxr.resample(audio, from_rate, to_rate, quality=QUALITY), dtype=np.float32)


class StreamResampler:
    """Resamples a mono float32 stream chunk by chunk; call :meth:`flush` once at the end.

    soxr holds back a few milliseconds of filter delay; ``flush`` returns them, so the total
    output length matches what :func:`resample` gives for the concatenated input.
    """

    def __init__(self, from_rate: int, to_rate: int) -> None:
        self.from_rate = from_rate
        self.to_rate = to_rate
        self._stream = soxr.ResampleStream(from_rate, to_rate, 1, dtype="float32", quality=QUALITY) if from_rate != to_rate else None

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Resample the next chunk; returns what is ready (possibly empty)."""
        chunk = np.asarray(chunk, dtype=np.float32).reshape(-1)
        if self._stream is None:
            return chunk
        return np.asarray(self._stream.resample_chunk(chunk), dtype=np.float32)

    def flush(self) -> np.ndarray:
        """Return the samples still held in the filter; the stream is finished afterwards."""
        if self._stream is None:
            return np.zeros(0, dtype=np.float32)
        return np.asarray(self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True), dtype=np.float32)
