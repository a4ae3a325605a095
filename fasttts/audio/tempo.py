"""Pitch-preserving tempo change (time-stretching) with FFmpeg's ``atempo`` through PyAV.

How a requested speed is met on models with no speed control of their own (or beyond it):
``factor`` 2.0 halves the duration at the same pitch. One ``atempo`` stage blends audio only for
factors in [0.5, 2.0] (above 2 FFmpeg skips samples instead), so a factor outside that range is
a chain of equal stages inside it: 4.0 = 2.0 x 2.0, 0.25 = 0.5 x 0.5.

:class:`TempoStretcher` is a stream: chunks go in as they are synthesised, stretched audio comes
out as the filter has it, and :meth:`TempoStretcher.flush` drains the filter. ``atempo`` works on
its own windows whatever the input framing, so a chunked stream equals the whole clip stretched
at once; the total is cut to ``round(samples / factor)``, the exact duration asked for (the
filter's last window otherwise pads a few milliseconds).
"""

from __future__ import annotations

import math
from fractions import Fraction

import av
import av.filter
import numpy as np

MIN_FACTOR, MAX_FACTOR = 0.25, 4.0
"""OpenAI's ``speed`` range, the factors accepted."""
STAGE_RANGE = (0.5, 2.0)
"""Factors one ``atempo`` stage handles by blending."""


def atempo_stages(factor: float) -> list[float]:
    """Equal ``atempo`` factors, each within :data:`STAGE_RANGE`, whose product is ``factor``."""
    if not MIN_FACTOR <= factor <= MAX_FACTOR:
        raise ValueError(f"tempo factor must be between {MIN_FACTOR} and {MAX_FACTOR}, got {factor}")
    count = max(1, math.ceil(abs(math.log2(factor)) - 1e-9))
    return [factor ** (1 / count)] * count


class TempoStretcher:
    """Time-stretches a mono float32 stream by ``factor``; call :meth:`flush` once at the end."""

    def __init__(self, sample_rate: int, factor: float) -> None:
        self.factor = factor
        self._rate = sample_rate
        self._graph = av.filter.Graph()
        node = self._graph.add_abuffer(format="flt", sample_rate=sample_rate, layout="mono", time_base=Fraction(1, sample_rate))
        for stage in atempo_stages(factor):
            nxt = self._graph.add("atempo", f"{stage:.10f}")
            node.link_to(nxt)
            node = nxt
        node.link_to(self._graph.add("abuffersink"))
        self._graph.configure()
        self._consumed = 0
        self._emitted = 0

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Stretch the next chunk; returns what the filter has ready (possibly empty)."""
        chunk = np.ascontiguousarray(chunk, dtype=np.float32).reshape(-1)
        if len(chunk):
            frame = av.AudioFrame.from_ndarray(chunk[None, :], format="flt", layout="mono")
            frame.sample_rate = self._rate
            frame.pts = self._consumed
            self._consumed += len(chunk)
            self._graph.push(frame)
        out = self._pull()
        self._emitted += len(out)
        return out

    def flush(self) -> np.ndarray:
        """The rest of the stretched audio, cut so the total is ``round(input / factor)`` samples."""
        self._graph.push(None)
        rest = self._pull()
        target = round(self._consumed / self.factor)
        keep = max(0, target - self._emitted)
        if len(rest) < keep:  # the filter gave a little less: pad with silence to the exact length
            rest = np.concatenate([rest, np.zeros(keep - len(rest), np.float32)])
        self._emitted += keep
        return rest[:keep]

    def _pull(self) -> np.ndarray:
        out: list[np.ndarray] = []
        while True:
            try:
                frame = self._graph.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                break
            out.append(frame.to_ndarray().reshape(-1).astype(np.float32, copy=False))
        return np.concatenate(out) if out else np.zeros(0, np.float32)


def time_stretch(audio: np.ndarray, sample_rate: int, factor: float) -> np.ndarray:
    """``audio`` played ``factor`` times as fast at the same pitch (no-op for 1.0)."""
    if factor == 1.0:
        return np.asarray(audio, dtype=np.float32).reshape(-1)
    stretcher = TempoStretcher(sample_rate, factor)
    return np.concatenate([stretcher.process(audio), stretcher.flush()])
