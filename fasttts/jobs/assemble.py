"""Turn a job's finished segments into its results: merged audio, chapters, M4B, subtitles.

Each chapter is a request of its own: its segments were synthesised knowing their places in the
chapter (:class:`~fasttts.jobs.runner.Claim`'s ``position``) and are joined with the same
:class:`SegmentJoiner` crossfade as the synchronous path (the engine's ``segment_crossfade_s``:
MegaTTS3 overlaps more than the default), so a chapter file is the request of its segments, ending
as a request ends (MegaTTS3's final pause, nothing held back for a crossfade that never comes). The
whole file is the chapters back to back, so it equals the chapter files concatenated and the M4B's
audio; a job that is not an audiobook is one chapter, the sync request's audio. Subtitle cues come
from where each segment starts in its chapter (each join overlaps the previous segment by the
crossfade), shifted by the chapters before it.
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


def join_chapters(pieces: list[Piece], chapters: int, rate: int, crossfade_s: float = SEGMENT_CROSSFADE_S) -> tuple[list[np.ndarray], list[Cue]]:
    """Each chapter's pieces joined on their own (at least ``chapters`` of them, empty where a
    chapter has no segment), and every piece's cue in the chapters laid back to back."""
    ordered = sorted(pieces, key=lambda p: p.index)
    count = max([chapters, *(p.chapter + 1 for p in ordered)])
    audio: list[np.ndarray] = []
    cues: list[Cue] = []
    offset = 0  # samples
    for c in range(count):
        joined, chapter_cues = join_with_cues([p for p in ordered if p.chapter == c], rate, crossfade_s)
        audio.append(joined)
        cues += [Cue(offset / rate + q.start_s, offset / rate + q.end_s, q.text) for q in chapter_cues]
        offset += len(joined)
    return audio, cues


def assemble(
    job_id: str, kind: str, fmt: str, rate: int, pieces: list[Piece], titles: list[str], store: ObjectStore, *, crossfade_s: float = SEGMENT_CROSSFADE_S
) -> dict[str, str]:
    """Write every artifact to ``store``; returns artifact name → key (all keys derive from the
    job id, so assembling twice overwrites)."""
    chapter_audio, cues = join_chapters(pieces, len(titles), rate, crossfade_s)
    audio = np.concatenate(chapter_audio) if chapter_audio else np.zeros(0, np.float32)
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
            chapters.append((title or f"Chapter {c + 1}", chapter_audio[c]))
            put(f"chapters/{c + 1:03d}.{fmt}", encode_audio(chapter_audio[c], rate, fmt), CONTENT_TYPES[fmt])
        put("book.m4b", _m4b_bytes(chapters, rate), "audio/mp4")
    return result


def _m4b_bytes(chapters: list[tuple[str, np.ndarray]], rate: int) -> bytes:
    buf = io.BytesIO()
    write_m4b(chapters, rate, buf)
    return buf.getvalue()
