"""Crossfades used wherever two pieces of audio meet (stream chunks, text segments).

The fades are raised-cosine (sin², cos²): they sum to exactly one, so two pieces that agree in
the overlap (as consecutive decode windows do) pass through unchanged, and the curve is smooth
enough that joining different pieces does not click.
"""

from __future__ import annotations

import numpy as np


def fade_curves(length: int) -> tuple[np.ndarray, np.ndarray]:
    """Raised-cosine fade-out and fade-in curves of ``length`` samples (they sum to one)."""
    t = (np.arange(length, dtype=np.float32) + 0.5) / max(length, 1)
    fade_in = np.sin(t * np.pi / 2) ** 2
    return (1.0 - fade_in).astype(np.float32), fade_in.astype(np.float32)


def blend(tail: np.ndarray, head: np.ndarray) -> np.ndarray:
    """Crossfade ``tail`` (end of the earlier audio) into ``head`` (start of the later one).

    Both must have the same length; the result replaces both (the overlap is counted once).
    """
    if tail.shape != head.shape:
        raise ValueError(f"crossfade pieces differ in length: {tail.shape} vs {head.shape}")
    fade_out, fade_in = fade_curves(len(tail))
    blended: np.ndarray = tail * fade_out + head * fade_in
    return blended


class SegmentJoiner:
    """Joins consecutive audio pieces with a short crossfade, incrementally.

    Each piece's last ``overlap`` samples are held back and blended into the next piece's first
    ``overlap`` samples, so a stream of pieces and the concatenation of the same pieces come out
    identical. Pieces shorter than twice the overlap are joined with a proportionally shorter fade.
    """

    def __init__(self, overlap: int) -> None:
        self.overlap = max(0, int(overlap))
        self._tail = np.zeros(0, dtype=np.float32)

    def push(self, piece: np.ndarray) -> np.ndarray:
        """Add the next whole piece; return the audio that is now final."""
        piece = np.asarray(piece, dtype=np.float32).reshape(-1)
        if len(self._tail):
            n = min(len(self._tail), len(piece) // 2)
            head = blend(self._tail[len(self._tail) - n :], piece[:n]) if n else piece[:0]
            piece = np.concatenate([self._tail[: len(self._tail) - n], head, piece[n:]])
        hold = min(self.overlap, len(piece) // 2)
        self._tail = piece[len(piece) - hold :].copy()
        return piece[: len(piece) - hold]

    def flush(self) -> np.ndarray:
        """Return what is held back after the last piece."""
        tail, self._tail = self._tail, np.zeros(0, dtype=np.float32)
        return tail
