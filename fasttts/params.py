"""Plain request-parameter objects shared by the engine, backends and the HTTP layer.

One dataclass per concern, each field documented, validated in ``__post_init__`` with an
:class:`~fasttts.errors.InvalidRequestError` that names the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from fasttts.errors import InvalidRequestError

LEVELS: tuple[str, ...] = ("very_low", "low", "moderate", "high", "very_high")
"""Spark's five pitch/speed levels, index = label id (``<|pitch_label_N|>``)."""

GENDERS: tuple[str, ...] = ("female", "male")
"""Spark voice-creation genders, index = ``<|gender_N|>``."""


def _check(cond: bool, param: str, message: str) -> None:
    if not cond:
        raise InvalidRequestError(f"{param}: {message}", param=param)


@dataclass(frozen=True)
class SamplingParams:
    """How the LLM samples the next token. ``None`` fields take the model's defaults."""

    temperature: float | None = None
    """Softmax temperature; 0 means greedy."""
    top_k: int | None = None
    """Keep only the k most likely tokens (0 or None: no limit)."""
    top_p: float | None = None
    """Nucleus sampling: keep the smallest set with this much probability mass."""
    repetition_penalty: float | None = None
    """Divide positive (multiply negative) logits of tokens already generated, as in CTRL."""
    max_tokens: int | None = None
    """Upper bound on generated tokens for one segment."""
    seed: int | None = None
    """Per-request seed; the same seed and inputs give the same tokens on a deterministic backend."""
    text_weight: float | None = None
    """MegaTTS3 classifier-free guidance towards the text ("intelligibility", reference p_w 1.6)."""
    speaker_weight: float | None = None
    """MegaTTS3 guidance towards the reference speaker ("similarity", reference t_w 2.5)."""
    diffusion_steps: int | None = None
    """MegaTTS3 flow-matching steps (reference 32)."""

    def __post_init__(self) -> None:
        if self.temperature is not None:
            _check(0.0 <= self.temperature <= 10.0, "temperature", "must be between 0 and 10")
        if self.top_k is not None:
            _check(self.top_k >= 0, "top_k", "must be >= 0")
        if self.top_p is not None:
            _check(0.0 < self.top_p <= 1.0, "top_p", "must be in (0, 1]")
        if self.repetition_penalty is not None:
            _check(0.1 <= self.repetition_penalty <= 10.0, "repetition_penalty", "must be between 0.1 and 10")
        if self.max_tokens is not None:
            _check(1 <= self.max_tokens <= 1_000_000, "max_tokens", "must be >= 1")
        for name in ("text_weight", "speaker_weight"):
            value = getattr(self, name)
            if value is not None:
                _check(0.0 <= value <= 20.0, name, "must be between 0 and 20")
        if self.diffusion_steps is not None:
            _check(1 <= self.diffusion_steps <= 256, "diffusion_steps", "must be between 1 and 256")

    def with_defaults(self, defaults: "SamplingParams") -> "SamplingParams":
        """Fill every ``None`` field from ``defaults`` (the model's reference settings)."""
        values = {
            name: getattr(self, name) if getattr(self, name) is not None else getattr(defaults, name)
            for name in self.__dataclass_fields__
        }
        return SamplingParams(**values)

    def with_seed(self, seed: int | None) -> "SamplingParams":
        return replace(self, seed=seed)


@dataclass(frozen=True)
class SplitParams:
    """How long text is cut into segments, counted in LLM tokens."""

    length_threshold: int = 50
    """Text shorter than this many tokens is one segment."""
    window_size: int = 50
    """Target segment length in tokens when splitting."""

    def __post_init__(self) -> None:
        _check(1 <= self.length_threshold <= 100_000, "length_threshold", "must be between 1 and 100000")
        _check(1 <= self.window_size <= 100_000, "window_size", "must be between 1 and 100000")


@dataclass(frozen=True)
class VoiceParams:
    """Which voice speaks. Exactly one of ``name``, ``reference_audio`` or ``gender`` is used."""

    name: str | None = None
    """A stored role (voice) name, or a built-in one (``female``/``male`` for Spark, ``tara`` for Orpheus)."""
    reference_audio: bytes | None = None
    """Encoded reference audio (any common container) for cloning."""
    reference_text: str | None = None
    """Transcript of ``reference_audio``; improves cloning when given."""
    reference_latent: bytes | None = field(default=None, repr=False)
    """MegaTTS3: the reference's ``.npy`` latent (its encoder is not released)."""
    gender: str | None = None
    """Spark voice creation: ``female`` or ``male``."""
    pitch: str | None = None
    """One of :data:`LEVELS`."""
    speed: str | None = None
    """One of :data:`LEVELS`."""
    instructions: str | None = None
    """Free-text style instructions (OpenAI ``instructions``); used where the model supports it."""
    state: dict[str, Any] | None = field(default=None, hash=False)
    """A voice as the model exported it (:meth:`~fasttts.engine.base.TTSEngine.pin_voice`); when
    given it is used as is (job segments carry their pinned voice this way)."""

    def __post_init__(self) -> None:
        if self.pitch is not None:
            _check(self.pitch in LEVELS, "pitch", f"must be one of {', '.join(LEVELS)}")
        if self.speed is not None:
            _check(self.speed in LEVELS, "speed", f"must be one of {', '.join(LEVELS)}")
        if self.gender is not None:
            _check(self.gender in GENDERS, "gender", f"must be one of {', '.join(GENDERS)}")


@dataclass(frozen=True)
class SynthesisOptions:
    """Everything besides text and voice that shapes one synthesis request."""

    sampling: SamplingParams = field(default_factory=SamplingParams)
    split: SplitParams = field(default_factory=SplitParams)
