"""The model-agnostic synthesis pipeline every engine shares.

text ──normalise──> segments (split by LLM-token count) ──per segment──> model hook
``_segment_stream`` (tokens → codec → audio chunks) ──SegmentJoiner (crossfade)──> audio.

Subclasses (one per model family, in ``fasttts/models/*``) implement only the hooks:
``_resolve_voice`` (what conditions the voice), ``_segment_stream`` (audio for one segment),
``count_tokens`` and the voice-store hooks. Streaming and non-streaming calls run the very same
code; non-streaming just concatenates, so both give the same audio for the same seed (the codec's
chunked decode equals its one-shot decode within the crossfade, see ``engine/streaming.py``).
"""

from __future__ import annotations

import abc
import asyncio
import logging
import random
from collections.abc import AsyncIterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fasttts.audio.crossfade import SegmentJoiner
from fasttts.config import Settings, with_overrides
from fasttts.errors import GenerationError, InvalidRequestError, NotFoundError, UnsupportedFeatureError
from fasttts.params import SamplingParams, SplitParams, VoiceParams
from fasttts.text import normalize_text, parse_script, split_text

if TYPE_CHECKING:
    from typing_extensions import Self

    from fasttts.backends.base import LLMBackend

logger = logging.getLogger(__name__)

SEGMENT_CROSSFADE_S = 0.02
"""Crossfade between consecutive text segments: short enough to drop nothing audible, long
enough that there is no click."""

SEGMENT_CONCURRENCY = 8
"""How far ahead of the segment being delivered a request may synthesise: up to this many segments
run at once (the LLM batches them), and no more audio than theirs waits in memory."""

SEGMENT_POSITION: ContextVar[tuple[int, int | None] | None] = ContextVar("segment_position", default=None)
"""(index, number of segments) of the segment the current task synthesises (the count is None when
unknown, e.g. a job worker's single segment): models whose segments differ by position (MegaTTS3's
first and final segments) read it in ``_segment_stream``."""


@dataclass(frozen=True)
class Capabilities:
    """What a loaded model can do; the HTTP layer turns a ``False`` into a clear 400."""

    clone: bool = False
    create: bool = False
    """Voice creation from gender/pitch/speed labels (Spark)."""
    pitch: bool = False
    speed: bool = False
    emotion_tags: bool = False
    streaming: bool = True


@dataclass
class EngineStats:
    """Counters the server exports as metrics."""

    requests: int = 0
    segments: int = 0
    audio_seconds: float = 0.0
    retries: int = 0
    active: int = 0


@dataclass
class Segment:
    """One unit of synthesis: a piece of text and the voice that speaks it."""

    text: str
    voice: VoiceParams
    index: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class TTSEngine(abc.ABC):
    """Public engine API: ``speak``/``clone``/``multi_speak`` and their ``*_stream`` variants.

    Audio is mono float32 in [-1, 1] at :attr:`sample_rate`.
    """

    model_type: str = "base"
    sample_rate: int = 16000
    capabilities: Capabilities = Capabilities()
    default_sampling: SamplingParams = SamplingParams(temperature=0.8, top_k=50, top_p=0.95, repetition_penalty=1.0, max_tokens=4096)
    default_voice: str = "default"
    segment_crossfade_s: float = SEGMENT_CROSSFADE_S

    def __init__(self, *, seed: int = 0, language: str | None = None) -> None:
        self.seed = seed
        self.language = language
        self.stats = EngineStats()

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_settings(cls, model_path: Path | None, settings: Settings, *, llm: LLMBackend | None = None) -> Self:
        """Load the model at ``model_path`` (its official on-disk layout, unchanged) configured by
        ``settings``; ``llm``: an already built backend to use instead of ``settings.backend``.
        The one constructor the model registry calls: every family implements it."""
        raise NotImplementedError(f"{cls.__name__} does not implement from_settings")

    @classmethod
    def load(cls, model_path: str | Path | None = None, settings: Settings | None = None, *, llm: LLMBackend | None = None, **overrides: Any) -> Self:
        """:meth:`from_settings` for callers holding a path: ``settings`` (default: from the
        environment) with any Settings field overridden by keyword (``backend="torch"``, ``seed=1``)."""
        if model_path is not None:
            overrides["model_path"] = str(model_path)
        resolved = with_overrides(settings, **overrides)
        return cls.from_settings(Path(resolved.model_path) if resolved.model_path is not None else None, resolved, llm=llm)

    # ------------------------------------------------------------------ hooks for subclasses
    @abc.abstractmethod
    async def _resolve_voice(self, voice: VoiceParams) -> Any:
        """Validate a voice and turn it into whatever conditions the model (raises
        :class:`NotFoundError` / :class:`UnsupportedFeatureError`). Called once per distinct voice
        of a request, before any audio is produced, so errors come before streaming starts."""

    @abc.abstractmethod
    def _segment_stream(self, text: str, voice: Any, sampling: SamplingParams, *, stream: bool) -> AsyncIterator[np.ndarray]:
        """Audio of one text segment. With ``stream=False`` it may yield a single array."""

    @abc.abstractmethod
    def count_tokens(self, text: str) -> int:
        """Length of ``text`` in the model's LLM tokens (drives segment splitting)."""

    def list_voices(self) -> list[str]:
        """Names a request may use as ``name``/``voice``."""
        return [self.default_voice]

    async def add_voice(self, name: str, reference_audio: bytes, reference_text: str | None = None) -> dict[str, Any]:
        """Register a cloned voice; returns its serialisable state (e.g. encoded tokens) so the
        caller can persist it and later :meth:`load_voice` it without re-encoding."""
        raise UnsupportedFeatureError(f"{self.model_type} cannot clone voices", param="reference_audio")

    def load_voice(self, name: str, state: dict[str, Any]) -> None:
        """Register a voice from state returned by :meth:`add_voice` or :meth:`freeze_voice`."""
        raise UnsupportedFeatureError(f"{self.model_type} has no stored voices", param="voice")

    def remove_voice(self, name: str) -> None:
        raise NotFoundError(f"voice '{name}' not found", param="voice")

    async def freeze_voice(self, name: str, voice: VoiceParams, *, seed: int | None = None) -> dict[str, Any]:
        """Fix a created voice (e.g. ``female``, high pitch) so it sounds the same every time."""
        raise UnsupportedFeatureError(f"{self.model_type} cannot freeze created voices", param="voice")

    async def pin_voice(self, voice: VoiceParams, *, seed: int | None = None) -> dict[str, Any] | None:
        """The state (for :attr:`VoiceParams.state`) that conditions ``voice``, resolved now, so it
        sounds the same wherever and whenever it is used (every worker running a job's segments,
        after the stored voice it names was changed or deleted): a stored voice's tokens, a
        reference encoded once, a created voice generated once. ``None`` when the model needs
        nothing beyond the voice's name and labels (built-in voices). An unknown voice raises
        :class:`NotFoundError` naming it. ``seed`` fixes which voice a created one becomes
        (default: a new one, as a request would get)."""
        await self._resolve_voice(voice)
        return None

    def _first_segment_writes_voice(self, voice: Any) -> bool:
        """Whether the request's first segment spoken in ``voice`` (as :meth:`_resolve_voice`
        returned it) decides what the voice sounds like for its later segments, which then wait for
        it (Spark's created voices). Default: no, so all segments of a voice run at once."""
        return False

    def normalize(self, text: str) -> str:
        return normalize_text(text, language=self.language)

    async def start(self) -> None:
        """Start background machinery (backend threads, batchers)."""

    async def shutdown(self) -> None:
        """Release the model."""

    @property
    def num_active(self) -> int:
        """Requests currently producing audio."""
        return self.stats.active

    # ------------------------------------------------------------------ public API
    async def speak(self, text: str, name: str | None = None, **kwargs: Any) -> np.ndarray:
        """Synthesize ``text`` with a named (or created) voice; the whole audio at once."""
        return await _collect(self.speak_stream(text, name, _stream=False, **kwargs))

    async def speak_stream(
        self,
        text: str,
        name: str | None = None,
        *,
        pitch: str | None = None,
        speed: str | None = None,
        gender: str | None = None,
        instructions: str | None = None,
        sampling: SamplingParams | None = None,
        split: SplitParams | None = None,
        _stream: bool = True,
    ) -> AsyncIterator[np.ndarray]:
        """Synthesize ``text``, yielding audio chunks as soon as they are ready."""
        voice = VoiceParams(name=name if name or gender else self.default_voice, gender=gender, pitch=pitch, speed=speed, instructions=instructions)
        async for chunk in self._run(self.segments(text, voice, split), sampling, stream=_stream):
            yield chunk

    async def clone(self, text: str, reference_audio: bytes, reference_text: str | None = None, **kwargs: Any) -> np.ndarray:
        """Synthesize ``text`` in the voice of ``reference_audio`` (any common audio format)."""
        return await _collect(self.clone_stream(text, reference_audio, reference_text, _stream=False, **kwargs))

    async def clone_stream(
        self,
        text: str,
        reference_audio: bytes,
        reference_text: str | None = None,
        *,
        pitch: str | None = None,
        speed: str | None = None,
        sampling: SamplingParams | None = None,
        split: SplitParams | None = None,
        _stream: bool = True,
    ) -> AsyncIterator[np.ndarray]:
        if not self.capabilities.clone:
            raise UnsupportedFeatureError(f"{self.model_type} cannot clone from reference audio", param="reference_audio")
        voice = VoiceParams(reference_audio=reference_audio, reference_text=reference_text, pitch=pitch, speed=speed)
        async for chunk in self._run(self.segments(text, voice, split), sampling, stream=_stream):
            yield chunk

    async def multi_speak(self, text: str, **kwargs: Any) -> np.ndarray:
        """Synthesize a script with ``<role:name>`` tags; the whole audio at once."""
        return await _collect(self.multi_speak_stream(text, _stream=False, **kwargs))

    async def multi_speak_stream(
        self,
        text: str,
        *,
        default_voice: str | None = None,
        sampling: SamplingParams | None = None,
        split: SplitParams | None = None,
        _stream: bool = True,
    ) -> AsyncIterator[np.ndarray]:
        segments = self.script_segments(text, default_voice=default_voice, split=split)
        async for chunk in self._run(segments, sampling, stream=_stream):
            yield chunk

    def script_segments(self, text: str, *, default_voice: str | None = None, split: SplitParams | None = None) -> list[Segment]:
        """Cut a multi-speaker script into segments, each with its voice (also used by job workers)."""
        segments: list[Segment] = []
        for part in parse_script(text, default_role=default_voice or self.default_voice):
            voice = VoiceParams(name=part.role, pitch=part.pitch, speed=part.speed)
            base = len(segments)
            segments.extend(Segment(t, voice, index=base + i) for i, t in enumerate(self._split(part.text, split)))
        return segments

    def segments(self, text: str, voice: VoiceParams, split: SplitParams | None = None) -> list[Segment]:
        """Cut text into the segments a request would synthesize (job workers store each one)."""
        return [Segment(t, voice, index=i) for i, t in enumerate(self._split(text, split))]

    async def synthesize_segment(self, segment: Segment, sampling: SamplingParams | None = None) -> np.ndarray:
        """Audio of a single segment, without any crossfade (job workers join segments later)."""
        voice = await self._resolve_voice(segment.voice)
        resolved = _segment_sampling((sampling or SamplingParams()).with_defaults(self.default_sampling), segment)
        token = SEGMENT_POSITION.set((segment.index, segment.extra.get("count")))
        try:
            return await _collect(self._segment_with_retry(segment.text, voice, resolved, stream=False))
        finally:
            SEGMENT_POSITION.reset(token)

    # ------------------------------------------------------------------ pipeline
    def _split(self, text: str, split: SplitParams | None) -> list[str]:
        split = split or SplitParams()
        pieces = split_text(self.normalize(text), self.count_tokens, split.length_threshold, split.window_size)
        return [p for p in pieces if p.strip()]

    async def _run(self, segments: list[Segment], sampling: SamplingParams | None, *, stream: bool) -> AsyncIterator[np.ndarray]:
        if not segments:
            raise InvalidRequestError("text is empty after normalisation", param="text")
        resolved = (sampling or SamplingParams()).with_defaults(self.default_sampling)
        voices: dict[int, Any] = {}
        for seg in segments:  # resolve every voice before the first audio: errors come first
            key = id(seg.voice)
            if key not in voices:
                voices[key] = await self._resolve_voice(seg.voice)
        joiner = SegmentJoiner(int(self.segment_crossfade_s * self.sample_rate))
        self.stats.requests += 1
        self.stats.active += 1
        try:
            pieces: list[np.ndarray] = []
            first = True
            async for chunk in self._segment_chunks(segments, voices, resolved, stream=stream):
                if chunk is None:  # the end of a segment
                    if not stream:
                        out = joiner.push(np.concatenate(pieces) if pieces else np.zeros(0, np.float32))
                        pieces.clear()
                        if len(out):
                            yield out
                    first = True
                elif stream:
                    out = self._through_joiner(joiner, chunk, first_of_segment=first)
                    first = False
                    if len(out):
                        yield out
                else:
                    pieces.append(chunk)
            tail = joiner.flush()
            if len(tail):
                yield tail
        finally:
            self.stats.active -= 1

    async def _segment_chunks(self, segments: list[Segment], voices: dict[int, Any], sampling: SamplingParams, *, stream: bool) -> AsyncIterator[np.ndarray | None]:
        """Every segment's audio chunks in order, each segment ended by ``None``.

        Segments within :data:`SEGMENT_CONCURRENCY` of the one being delivered run at once, so the
        backend decodes them in one batch; their chunks wait in their queues until their turn (a
        stream's first audio is the first segment's, as soon as it comes), and a slow consumer holds
        the rest back. Where the model says a voice is written by its first segment
        (:meth:`_first_segment_writes_voice`), that segment runs before the voice's others."""
        first_of: dict[int, Segment] = {}
        for seg in segments:
            first_of.setdefault(id(seg.voice), seg)
        written = {key: asyncio.Event() for key in first_of}
        for key, event in written.items():
            if not self._first_segment_writes_voice(voices[key]):
                event.set()
        window = asyncio.Condition()
        delivering = [0]  # the index of the segment being delivered
        queues: list[asyncio.Queue[np.ndarray | BaseException | None]] = [asyncio.Queue() for _ in segments]

        async def run(index: int, seg: Segment, queue: asyncio.Queue) -> None:
            key = id(seg.voice)
            try:
                async with window:
                    await window.wait_for(lambda: index < delivering[0] + SEGMENT_CONCURRENCY)
                if first_of[key] is not seg:
                    await written[key].wait()
                SEGMENT_POSITION.set((index, len(segments)))
                async for chunk in self._segment_with_retry(seg.text, voices[key], _segment_sampling(sampling, seg), stream=stream):
                    queue.put_nowait(chunk)
                written[key].set()
                self.stats.segments += 1
                queue.put_nowait(None)
            except BaseException as exc:  # the consumer re-raises it in order
                queue.put_nowait(exc)
                raise

        tasks = [asyncio.create_task(run(i, seg, queue)) for i, (seg, queue) in enumerate(zip(segments, queues))]
        try:
            for index, queue in enumerate(queues):
                async with window:
                    delivering[0] = index
                    window.notify_all()
                while (item := await queue.get()) is not None:
                    if isinstance(item, BaseException):
                        raise item
                    yield item
                yield None
        finally:  # an error or a consumer that went away: stop the segments still running
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _through_joiner(self, joiner: SegmentJoiner, chunk: np.ndarray, *, first_of_segment: bool) -> np.ndarray:
        """Streaming path of the segment crossfade: only a segment's first chunk blends with the
        previous segment's held tail, and only the last chunk of a segment is held back; so we
        push the first chunk through the joiner and pass later ones around it, holding back the
        same tail as the non-streaming path."""
        if first_of_segment:
            return joiner.push(chunk)
        held = joiner.flush()
        return joiner.push(np.concatenate([held, chunk]))

    async def _segment_with_retry(self, text: str, voice: Any, sampling: SamplingParams, *, stream: bool) -> AsyncIterator[np.ndarray]:
        """A segment that yields no audio at all is retried once with a new seed, then reported."""
        for attempt in range(2):
            produced = 0
            async for chunk in self._segment_stream(text, voice, sampling, stream=stream):
                chunk = np.asarray(chunk, dtype=np.float32).reshape(-1)
                if len(chunk):
                    produced += len(chunk)
                    self.stats.audio_seconds += len(chunk) / self.sample_rate
                    yield chunk
            if produced:
                return
            self.stats.retries += 1
            new_seed = random.randrange(2**31) if sampling.seed is None else sampling.seed + 7919
            logger.warning("segment %r produced no audio (attempt %d); retrying with seed %d", text[:40], attempt + 1, new_seed)
            sampling = sampling.with_seed(new_seed)
        raise GenerationError(f"the model produced no audio for the segment {text[:60]!r} after a retry with a new seed")


def _segment_sampling(sampling: SamplingParams, segment: Segment) -> SamplingParams:
    """Each segment of a seeded request gets its own derived seed, the same whether the segment
    runs in a request, alone in a job worker, or in ``fasttts infer``."""
    return sampling if sampling.seed is None else sampling.with_seed(sampling.seed + segment.index)


async def _collect(stream: AsyncIterator[np.ndarray]) -> np.ndarray:
    chunks = [c async for c in stream]
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
