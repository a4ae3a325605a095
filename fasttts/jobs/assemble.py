"""Turn a job's finished segments into its results: merged audio, chapters, M4B, subtitles.

Segments are joined with the same :class:`SegmentJoiner` crossfade as the synchronous path (the
engine's ``segment_crossfade_s``: MegaTTS3 overlaps more than the default), so a job and a sync
request give the same audio. Subtitle cues come from where each segment starts in
the joined audio (each join overlaps the previous segment by the crossfade).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from fasttts.audio.crossfade import SegmentJoiner
from fasttts.audio.encode import CONTENT_TYPES, encode_audio
from fasttts.audio.m4b import write_m4b
from fasttts.audio.subtitles import write_subtitles
from fasttts.engine.base import SEGMENT_CROSSFADE_S
from fasttts.storage import ObjectStore, result_key


@dataclass
class Piece:
    """One finished segment: where it belongs and its audio."""

    index: int
    chapter: int
    text: str
    audio: np.ndarray


@dataclass
class Cue:
    start_s: float
    end_s: float
    text: str


def join_with_cues(pieces: list[Piece], rate: int, crossfade_s: float = SEGMENT_CROSSFADE_S) -> tuple[np.ndarray, list[Cue]]:
    """Crossfade-join ``pieces`` and report where each one sits in the result."""
    joiner = SegmentJoiner(int(crossfade_s * rate))
    out: list[np.ndarray] = []
    emitted = 0
    held = 0
    cues: list[Cue] = []
    for p in pieces:
        # SegmentJoiner blends min(held, len//2) samples of the held tail into this piece's head.
        start = emitted + held - min(held, len(p.audio) // 2)
        chunk = joiner.push(p.audio)
        out.append(chunk)
        emitted += len(chunk)
        held = start + len(p.audio) - emitted
        cues.append(Cue(start / rate, (start + len(p.audio)) / rate, p.text))
    out.append(joiner.flush())
    audio = np.concatenate(out) if out else np.zeros(0, np.float32)
    return audio, cues


def assemble(
    job_id: str, kind: str, fmt: str, rate: int, pieces: list[Piece], titles: list[str], store: ObjectStore, *, crossfade_s: float = SEGMENT_CROSSFADE_S
) -> dict[str, str]:
    """Write every artifact to ``store``; returns artifact name → key (all keys derive from the
    job id, so assembling twice overwrites)."""
    pieces = sorted(pieces, key=lambda p: p.index)
    audio, cues = join_with_cues(pieces, rate, crossfade_s)
    result: dict[str, str] = {}

    def put(name: str, data: bytes, content_type: str) -> None:
        key = result_key(job_id, name)
        store.put(key, data, content_type=content_type)
        result[name] = key

    put(f"audio.{fmt}", encode_audio(audio, rate, fmt), CONTENT_TYPES[fmt])
    timings = [(c.start_s, c.end_s, c.text) for c in cues]
    put("subtitles.srt", write_subtitles(timings, "srt").encode(), "application/x-subrip")
    put("subtitles.vtt", write_subtitles(timings, "vtt").encode(), "text/vtt")
    if kind == "audiobook":
        chapters: list[tuple[str, np.ndarray]] = []
        for c, title in enumerate(titles):
            chapter_audio, _ = join_with_cues([p for p in pieces if p.chapter == c], rate, crossfade_s)
            chapters.append((title or f"Chapter {c + 1}", chapter_audio))
            put(f"chapters/{c + 1:03d}.{fmt}", encode_audio(chapter_audio, rate, fmt), CONTENT_TYPES[fmt])
        put("book.m4b", _m4b_bytes(chapters, rate), "audio/mp4")
    return result


def _m4b_bytes(chapters: list[tuple[str, np.ndarray]], rate: int) -> bytes:
    buf = io.BytesIO()
    write_m4b(chapters, rate, buf)
    return buf.getvalue()
