"""What a job asks for, as a plain JSON-able object stored in ``jobs.request``.

The request is stored whole so any worker can re-run any segment later, and it is self-contained:
every voice the job uses is resolved at submit into ``pinned_voices`` as the state that conditions
it (:func:`fasttts.jobs.plan.pin_job_voices`; a clone job's reference audio is encoded there, once,
and not kept). Segments carry only their voice's labels; the state is looked up here by
:func:`~fasttts.jobs.plan.voice_key`, so a row holds each voice's tokens once, never audio.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from fasttts.db import JOB_KINDS
from fasttts.errors import InvalidRequestError
from fasttts.params import RESPONSE_FORMATS, SamplingParams, SplitParams, VoiceParams


@dataclass
class VoiceSpec:
    """A voice as labels (name or creation labels, pitch, speed); no bytes, no state."""

    name: str | None = None
    gender: str | None = None
    pitch: str | None = None
    speed: str | None = None
    tempo: float | None = None
    """A speed factor (OpenAI ``speed``), as :attr:`fasttts.params.VoiceParams.tempo`."""
    instructions: str | None = None
    reference_text: str | None = None
    """Clone jobs: the transcript of the reference audio uploaded with the job."""

    def __post_init__(self) -> None:
        VoiceParams(name=self.name, gender=self.gender, pitch=self.pitch, speed=self.speed, tempo=self.tempo)  # validates labels

    def to_params(self, *, reference_audio: bytes | None = None, state: dict[str, Any] | None = None) -> VoiceParams:
        return VoiceParams(
            name=None if reference_audio else self.name,
            gender=self.gender,
            pitch=self.pitch,
            speed=self.speed,
            tempo=self.tempo,
            instructions=self.instructions,
            reference_audio=reference_audio,
            reference_text=self.reference_text,
            state=state,
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VoiceSpec:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class JobSpec:
    """Everything a job needs besides its uploads."""

    kind: str
    text: str = ""
    voice: VoiceSpec = field(default_factory=VoiceSpec)
    output_format: str = "mp3"
    sampling: dict[str, Any] = field(default_factory=dict)
    """:class:`SamplingParams` fields (temperature, top_k, top_p, repetition_penalty, max_tokens, seed)."""
    split: dict[str, Any] = field(default_factory=dict)
    """:class:`SplitParams` fields (length_threshold, window_size)."""
    default_voice: str | None = None
    """``multi_speak``: who speaks untagged text."""
    chapter_voices: dict[str, str] = field(default_factory=dict)
    """``audiobook``: chapter number (1-based, as a string) → voice name."""
    pinned_voices: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Every voice of the job resolved at submit (:func:`fasttts.jobs.plan.pin_job_voices`):
    :func:`~fasttts.jobs.plan.voice_key` → the state that conditions it (models whose voices need
    no state, such as Piper's, have no entries)."""

    def __post_init__(self) -> None:
        if self.kind not in JOB_KINDS:
            raise InvalidRequestError(f"kind must be one of {', '.join(JOB_KINDS)}", param="kind")
        if self.output_format not in RESPONSE_FORMATS:
            raise InvalidRequestError(f"output_format must be one of {', '.join(RESPONSE_FORMATS)}", param="output_format")
        if isinstance(self.voice, dict):
            self.voice = VoiceSpec.from_dict(self.voice)
        self.sampling_params()  # validate early: a bad option is a 400 at submit, not a failed job
        self.split_params()

    def sampling_params(self) -> SamplingParams:
        try:
            return SamplingParams(**self.sampling)
        except TypeError as e:
            raise InvalidRequestError(f"unknown sampling option: {e}", param="sampling") from None

    def split_params(self) -> SplitParams:
        try:
            return SplitParams(**self.split)
        except TypeError as e:
            raise InvalidRequestError(f"unknown split option: {e}", param="split") from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> JobSpec:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
