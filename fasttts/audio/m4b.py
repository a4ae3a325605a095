"""MPEG-4 audiobooks (``.m4b``): AAC in an iPod-flavoured MP4 with one chapter marker per chapter.

Chapters are written through PyAV's ``OutputContainer.set_chapters`` (PyAV 14+), which fills
FFmpeg's chapter list before the header is written; the MP4 muxer turns it into a QuickTime
chapter track and a Nero ``chpl`` atom, the two forms audiobook players read. MP4's edit list
records the AAC priming delay, so chapter starts line up with the audio exactly.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import av
import numpy as np

if TYPE_CHECKING:
    from av.container.core import Chapter

AAC_BIT_RATE = 64_000
"""Plenty for speech in mono AAC-LC."""

_MS = Fraction(1, 1000)


def write_m4b(
    chapters: list[tuple[str, np.ndarray]],
    sample_rate: int,
    path_or_buffer: str | Path | BinaryIO,
    *,
    title: str | None = None,
) -> None:
    """Write ``chapters`` (title, float32 mono audio) back to back as one ``.m4b`` file.

    ``path_or_buffer`` is a path or a seekable binary file object (MP4 writes its index last).
    """
    if not chapters:
        raise ValueError("an audiobook needs at least one chapter")
    target = str(path_or_buffer) if isinstance(path_or_buffer, (str, Path)) else path_or_buffer
    with av.open(target, "w", format="ipod") as container:
        if title:
            container.metadata["title"] = title
        stream = container.add_stream("aac", rate=sample_rate, layout="mono")
        stream.codec_context.bit_rate = AAC_BIT_RATE
        container.set_chapters(_chapter_marks(chapters, sample_rate))
        pts = 0
        for _, audio in chapters:
            samples = np.clip(np.nan_to_num(np.asarray(audio, np.float32).reshape(-1)), -1.0, 1.0)
            if not len(samples):
                continue
            frame = av.AudioFrame.from_ndarray(samples[None, :], format="fltp", layout="mono")
            frame.sample_rate = sample_rate
            frame.pts = pts
            pts += len(samples)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _chapter_marks(chapters: list[tuple[str, np.ndarray]], sample_rate: int) -> list[Chapter]:
    """PyAV chapter entries in milliseconds, each starting where the previous one ends."""
    marks: list[Chapter] = []
    start = 0
    for index, (chapter_title, audio) in enumerate(chapters):
        end = start + len(np.asarray(audio).reshape(-1))
        marks.append(
            {
                "id": index + 1,
                "start": round(start * 1000 / sample_rate),
                "end": round(end * 1000 / sample_rate),
                "time_base": _MS,
                "metadata": {"title": chapter_title},
            }
        )
        start = end
    return marks


def read_chapters(path: str | Path | BinaryIO) -> list[tuple[str, float, float]]:
    """(title, start seconds, end seconds) of every chapter in an MP4/M4B file."""
    source = str(path) if isinstance(path, (str, Path)) else path
    marks: list[tuple[str, float, float]] = []
    with av.open(source, "r") as container:
        for chapter in container.chapters():
            time_base = chapter["time_base"]
            if time_base is None:  # how PyAV reads a zero time base
                raise ValueError(f"chapter {chapter['id']} has no time base")
            marks.append((chapter["metadata"].get("title", ""), float(chapter["start"] * time_base), float(chapter["end"] * time_base)))
    return marks
