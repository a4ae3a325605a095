"""Cut a job into the segments its workers will claim, using the engine's own splitter.

The same ``engine.segments``/``engine.script_segments`` the synchronous path uses, so a job and a
sync request of the same text produce the same segments. Audiobooks are split per chapter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fasttts.engine.base import TTSEngine
from fasttts.errors import InvalidRequestError
from fasttts.jobs.spec import JobSpec, VoiceSpec
from fasttts.params import VoiceParams


@dataclass
class PlannedSegment:
    index: int
    chapter: int
    text: str
    voice: dict[str, Any]


def _voice_dict(v: VoiceParams, base: VoiceSpec) -> dict[str, Any]:
    return VoiceSpec(name=v.name, gender=v.gender, pitch=v.pitch, speed=v.speed, instructions=v.instructions,
                     reference_key=base.reference_key, reference_text=base.reference_text).__dict__.copy()


def plan_job(engine: TTSEngine, spec: JobSpec, chapters: list[tuple[str, str]] | None = None) -> tuple[list[PlannedSegment], list[str]]:
    """Segments of the job in order, and chapter titles (one untitled chapter unless an audiobook)."""
    split = spec.split_params()
    planned: list[PlannedSegment] = []
    titles: list[str] = []

    def add(segments: list, chapter: int) -> None:
        for seg in segments:
            planned.append(PlannedSegment(len(planned), chapter, seg.text, _voice_dict(seg.voice, spec.voice)))

    if spec.kind == "audiobook":
        if not chapters:
            raise InvalidRequestError("the book has no text", param="file")
        for c, (title, text) in enumerate(chapters):
            name = spec.chapter_voices.get(str(c + 1)) or spec.voice.name or engine.default_voice
            voice = VoiceParams(name=name, pitch=spec.voice.pitch, speed=spec.voice.speed)
            add(engine.segments(text, voice, split), c)
            titles.append(title)
    elif spec.kind == "multi_speak":
        add(engine.script_segments(spec.text, default_voice=spec.default_voice or spec.voice.name, split=split), 0)
    else:
        voice = spec.voice.to_params()
        if spec.kind == "speak" and not (voice.name or voice.gender):
            voice = VoiceParams(name=engine.default_voice, pitch=voice.pitch, speed=voice.speed, instructions=voice.instructions)
        add(engine.segments(spec.text, voice, split), 0)
    if not planned:
        raise InvalidRequestError("text is empty after normalisation", param="text")
    return planned, titles or [""]
