"""Cut a job into the segments its workers will claim, using the engine's own splitter.

The same ``engine.segments``/``engine.script_segments`` the synchronous path uses, so a job and a
sync request of the same text produce the same segments. Audiobooks are split per chapter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from fasttts.engine.base import Segment, TTSEngine
from fasttts.errors import InvalidRequestError, PayloadTooLargeError
from fasttts.jobs.spec import JobSpec, VoiceSpec
from fasttts.params import VoiceParams


@dataclass
class PlannedSegment:
    index: int
    chapter: int
    text: str
    voice: dict[str, Any]


def voice_key(v: VoiceParams) -> str:
    """What a segment's voice asks for (name, gender, pitch, speed): the key of ``JobSpec.pinned_voices``."""
    return json.dumps([v.name, v.gender, v.pitch, v.speed])


def _voice_dict(v: VoiceParams) -> dict[str, Any]:
    """What a segment row keeps of its voice: labels only (its state is in the job's request)."""
    return VoiceSpec(name=v.name, gender=v.gender, pitch=v.pitch, speed=v.speed, tempo=v.tempo, instructions=v.instructions).__dict__.copy()


def segment_voice(voice: dict[str, Any], request: dict[str, Any]) -> VoiceParams:
    """A stored segment's voice with the state its job pinned at submit (what a worker runs)."""
    labels = VoiceSpec.from_dict(voice)
    return labels.to_params(state=(request.get("pinned_voices") or {}).get(voice_key(labels.to_params())))


def _book_voice(engine: TTSEngine, spec: JobSpec, name: str | None) -> VoiceParams:
    """An audiobook voice: ``name`` (a chapter's own) or the book's narrator."""
    voice = VoiceParams(name=name or spec.voice.name or engine.default_voice, pitch=spec.voice.pitch, speed=spec.voice.speed, tempo=spec.voice.tempo)
    return engine.speed_plan(voice)


def _single_voice(engine: TTSEngine, spec: JobSpec) -> VoiceParams:
    voice = spec.voice.to_params()
    if spec.kind == "clone":  # the reference speaks: a name or gender given with it means nothing
        return engine.speed_plan(replace(voice, name=None, gender=None))
    if spec.kind == "speak" and not (voice.name or voice.gender):
        voice = VoiceParams(name=engine.default_voice, pitch=voice.pitch, speed=voice.speed, tempo=voice.tempo, instructions=voice.instructions)
    return engine.speed_plan(voice)


def check_job_chars(chars: int, limit: int, param: str) -> None:
    """Bound a job before it is planned: planning and storing segments costs time and rows in
    proportion to the text, so an unbounded text would hold ``submit`` for minutes."""
    if chars > limit:
        raise PayloadTooLargeError(f"{param}: the job has {chars:,} characters of text, more than max_job_chars ({limit:,})", param=param)


def plan_job(engine: TTSEngine, spec: JobSpec, chapters: list[tuple[str, str]] | None = None) -> tuple[list[PlannedSegment], list[str]]:
    """Segments of the job in order, and chapter titles (one untitled chapter unless an audiobook)."""
    split = spec.split_params()
    planned: list[PlannedSegment] = []
    titles: list[str] = []

    def add(segments: list[Segment], chapter: int) -> None:
        for seg in segments:
            planned.append(PlannedSegment(len(planned), chapter, seg.text, _voice_dict(seg.voice)))

    if spec.kind == "audiobook":
        if not chapters:
            raise InvalidRequestError("the book has no text", param="file")
        for c, (title, text) in enumerate(chapters):
            add(engine.segments(text, _book_voice(engine, spec, spec.chapter_voices.get(str(c + 1))), split), c)
            titles.append(title)
    elif spec.kind == "multi_speak":
        add(engine.script_segments(spec.text, default_voice=spec.default_voice or spec.voice.name, split=split), 0)
    else:
        add(engine.segments(spec.text, _single_voice(engine, spec), split), 0)
    if not planned:
        raise InvalidRequestError("text is empty after normalisation", param="text")
    return planned, titles or [""]


def _job_voices(engine: TTSEngine, spec: JobSpec, reference_audio: bytes | None) -> list[VoiceParams]:
    """Every voice a segment of the job can speak with."""
    if spec.kind == "clone":
        return [replace(_single_voice(engine, spec), reference_audio=reference_audio)]
    if spec.kind == "audiobook":
        return [_book_voice(engine, spec, name) for name in [*spec.chapter_voices.values(), None]]
    if spec.kind == "multi_speak":
        return [seg.voice for seg in engine.script_segments(spec.text, default_voice=spec.default_voice or spec.voice.name, split=spec.split_params())]
    return [_single_voice(engine, spec)]


async def pin_job_voices(engine: TTSEngine, spec: JobSpec, reference_audio: bytes | None = None) -> None:
    """Resolve every voice the job can use, now, into ``spec.pinned_voices`` (its conditioning
    state: a stored or ``--role_dir`` voice's tokens, a clone job's reference encoded once, a
    created voice generated once). A job's segments run on any worker in any order, later: none of
    them looks a voice up, so a voice changed or deleted after submit does not change the job, and
    a voice the model does not know fails the submit (404 naming it) instead of the job. First,
    before any model work, a ``max_tokens`` too small for the job's voices is refused (400, as the
    synchronous routes)."""
    voices = _job_voices(engine, spec, reference_audio)
    engine.check_max_tokens(voices, spec.sampling_params())
    seed = spec.sampling_params().seed
    for voice in voices:
        key = voice_key(voice)
        if key not in spec.pinned_voices and (state := await engine.pin_voice(voice, seed=seed)) is not None:
            spec.pinned_voices[key] = state
