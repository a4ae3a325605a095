"""Plain request-parameter objects shared by the engine, backends and the HTTP layer.

One dataclass per concern, each field documented, validated in ``__post_init__`` with an
:class:`~fasttts.errors.InvalidRequestError` that names the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, get_args

from annotated_types import Interval

from fasttts.errors import InvalidRequestError

ResponseFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]
RESPONSE_FORMATS: tuple[str, ...] = get_args(ResponseFormat)
"""Every audio format we encode (:mod:`fasttts.audio.encode`); the API, CLI and jobs offer these."""

Level = Literal["very_low", "low", "moderate", "high", "very_high"]
LEVELS: tuple[str, ...] = get_args(Level)
"""The five pitch/speed levels, index = Spark's label id (``<|pitch_label_N|>``)."""

Gender = Literal["female", "male"]
GENDERS: tuple[str, ...] = get_args(Gender)
"""Spark voice-creation genders, index = ``<|gender_N|>``."""

LEVEL_TEMPO: dict[str, float] = dict(zip(LEVELS, (0.7, 0.85, 1.0, 1.2, 1.4)))
"""The tempo factor each speed level stands for: what a model without native speed control
time-stretches a level to, and which OpenAI ``speed`` a model with native levels meets natively."""

LEVEL_MATCH = 0.01
"""Relative distance within which a tempo factor counts as a level's (so 1.0 is ``moderate``)."""


def matching_level(tempo: float) -> str | None:
    """The speed level whose tempo is ``tempo`` (within :data:`LEVEL_MATCH`), if any."""
    return next((level for level, t in LEVEL_TEMPO.items() if abs(tempo / t - 1.0) <= LEVEL_MATCH), None)


BackendName = Literal["torch", "vllm", "sglang", "llama-cpp", "mlx-lm"]
BACKEND_NAMES: tuple[str, ...] = get_args(BackendName)
"""The LLM backends by name (:data:`fasttts.backends.registry.BACKENDS` maps each to its class)."""


@dataclass(frozen=True)
class Limit:
    """The allowed values of one numeric request field: ``low`` (excluded if ``low_open``) up to
    ``high`` (None: no upper bound). The HTTP schemas constrain their fields with :attr:`interval`
    and the parameter objects below check them, so a value is bounded the same way everywhere."""

    low: float
    high: float | None = None
    low_open: bool = False

    @property
    def interval(self) -> Interval:
        """The bounds as ``Annotated`` metadata (pydantic and FastAPI validate and document it)."""
        return Interval(gt=self.low, le=self.high) if self.low_open else Interval(ge=self.low, le=self.high)

    def check(self, param: str, value: float) -> None:
        above = value > self.low if self.low_open else value >= self.low
        if not (above and (self.high is None or value <= self.high)):
            raise InvalidRequestError(f"{param}: must be {self}", param=param)

    def __str__(self) -> str:
        low = _number(self.low)
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {low}"
        return f"in ({low}, {_number(self.high)}]" if self.low_open else f"between {low} and {_number(self.high)}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


MAX_SEED = 2**63 - 1
"""Largest seed: every backend, numpy and the databases hold a signed 64-bit integer."""


def offset_seed(seed: int, by: int) -> int:
    """A seed derived from ``seed`` (per segment, per retry) that stays within 0..MAX_SEED."""
    return (seed + by) % (MAX_SEED + 1)


LIMITS: dict[str, Limit] = {
    "temperature": Limit(0.0, 10.0),
    "top_k": Limit(0),
    "top_p": Limit(0.0, 1.0, low_open=True),
    "repetition_penalty": Limit(0.1, 10.0),
    "max_tokens": Limit(1, 1_000_000),
    "seed": Limit(0, MAX_SEED),
    "text_weight": Limit(0.0, 20.0),
    "speaker_weight": Limit(0.0, 20.0),
    "diffusion_steps": Limit(1, 256),
    "length_threshold": Limit(1, 100_000),
    "window_size": Limit(1, 100_000),
}
"""The range of every numeric field of :class:`SamplingParams` and :class:`SplitParams`."""

TEMPO_LIMIT = Limit(0.25, 4.0)
"""OpenAI's ``speed`` range: the tempo factors (:attr:`VoiceParams.tempo`) a request may ask for."""


def _check(cond: bool, param: str, message: str) -> None:
    if not cond:
        raise InvalidRequestError(f"{param}: {message}", param=param)


def _check_limits(params: Any) -> None:
    for spec in fields(params):
        value = getattr(params, spec.name)
        if value is not None:
            LIMITS[spec.name].check(spec.name, value)


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
        _check_limits(self)

    def with_defaults(self, defaults: SamplingParams) -> SamplingParams:
        """Fill every ``None`` field from ``defaults`` (the model's reference settings)."""
        values = {name: getattr(self, name) if getattr(self, name) is not None else getattr(defaults, name) for name in self.__dataclass_fields__}
        return SamplingParams(**values)

    def with_seed(self, seed: int | None) -> SamplingParams:
        return replace(self, seed=seed)


@dataclass(frozen=True)
class SplitParams:
    """How long text is cut into segments, counted in LLM tokens."""

    length_threshold: int = 50
    """Text shorter than this many tokens is one segment."""
    window_size: int = 50
    """Target segment length in tokens when splitting."""

    def __post_init__(self) -> None:
        _check_limits(self)


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
    tempo: float | None = None
    """Speed as a factor (OpenAI ``speed``: 2.0 is twice as fast), met natively where a model's
    level matches it and by pitch-preserving time-stretching otherwise (see
    :meth:`~fasttts.engine.base.TTSEngine.speed_plan`)."""
    state: dict[str, Any] | None = field(default=None, hash=False)
    """A voice as the model exported it (:meth:`~fasttts.engine.base.TTSEngine.pin_voice`); when
    given it is used as is (job segments carry their pinned voice this way)."""

    def __post_init__(self) -> None:
        if self.pitch is not None:
            _check(self.pitch in LEVELS, "pitch", f"must be one of {', '.join(LEVELS)}")
        if self.speed is not None:
            _check(self.speed in LEVELS, "speed", f"must be one of {', '.join(LEVELS)}")
        if self.tempo is not None:
            TEMPO_LIMIT.check("speed", self.tempo)
        if self.gender is not None:
            _check(self.gender in GENDERS, "gender", f"must be one of {', '.join(GENDERS)}")
