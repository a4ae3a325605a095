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
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

import numpy as np

from fasttts.audio.crossfade import SegmentJoiner
from fasttts.audio.tempo import TempoStretcher
from fasttts.config import Settings, with_overrides
from fasttts.errors import GenerationError, InvalidRequestError, NotFoundError, UnsupportedFeatureError
from fasttts.params import LEVEL_TEMPO, SamplingParams, SplitParams, VoiceParams, matching_level, offset_seed
from fasttts.text import check_characters, normalize_text, parse_script, split_text

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
"""(index, number of segments) of the segment the current task synthesises within its request (a
job's chapter: ``Segment.extra["position"]``; the count is None when unknown): models whose segments
differ by position (MegaTTS3's first and final segments) read it in ``_segment_stream``."""


@dataclass(frozen=True)
class Capabilities:
    """What a loaded model can do; the HTTP layer turns a ``False`` into a clear 400."""

    clone: bool = False
    create: bool = False
    """Voice creation from gender/pitch/speed labels (Spark)."""
    pitch: bool = False
    speed: bool = False
    """Native speed levels; every model meets any speed (see :meth:`TTSEngine.speed_plan`)."""
    emotion_tags: bool = False
    streaming: bool = True
    voice_latent: bool = False
    """Cloning needs the reference's latent as well as its audio (MegaTTS3's ``.npy``, upload
    field ``latent_file``): the release withholds the encoder that would compute it."""


@dataclass
class EngineStats:
    """Counters the server exports as metrics."""

    requests: int = 0
    segments: int = 0
    audio_seconds: float = 0.0
    retries: int = 0
    active: int = 0


class StreamKwargs(TypedDict, total=False):
    """Keyword options of every ``*_stream`` call, which its whole-audio twin (``speak``, ...)
    forwards: typed, so a route's options are checked against the method that takes them."""

    sampling: SamplingParams | None
    split: SplitParams | None


class SpeakKwargs(StreamKwargs, total=False):
    """:meth:`TTSEngine.speak_stream`'s options."""

    pitch: str | None
    speed: str | None
    gender: str | None
    instructions: str | None
    tempo: float | None


class CloneKwargs(StreamKwargs, total=False):
    """:meth:`TTSEngine.clone_stream`'s options."""

    pitch: str | None
    speed: str | None
    tempo: float | None
    latent: bytes | None


class ScriptKwargs(StreamKwargs, total=False):
    """:meth:`TTSEngine.multi_speak_stream`'s options."""

    default_voice: str | None


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
    default_role_dir: str = "data/roles"
    """``--role_dir`` when the flag is not given."""
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

    async def add_voice(self, name: str, reference_audio: bytes, reference_text: str | None = None, *, latent: bytes | None = None) -> dict[str, Any]:
        """Register a cloned voice; returns its serialisable state (e.g. encoded tokens) so the
        caller can persist it and later :meth:`load_voice` it without re-encoding. ``latent``:
        the reference's latent file, for models with :attr:`Capabilities.voice_latent`."""
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

    def min_tokens(self, voice: VoiceParams) -> int:
        """The fewest generated tokens (``max_tokens``) with which a segment spoken in ``voice`` can
        produce any audio. Computed without model work (no reference is encoded, nothing runs), so
        :meth:`check_max_tokens` can refuse a request before anything starts. Default 1."""
        return 1

    def check_max_tokens(self, voices: Iterable[VoiceParams], sampling: SamplingParams | None) -> None:
        """400 (naming ``max_tokens`` and the minimum) when the request's ``max_tokens`` is too small
        for any of ``voices`` to produce audio: the caller's mistake, never a retry and a 500."""
        max_tokens = (sampling or SamplingParams()).with_defaults(self.default_sampling).max_tokens
        if max_tokens is None:
            return
        distinct = {id(v): v for v in voices}.values()  # a request's segments share their voice objects
        need = max((self.min_tokens(v) for v in distinct), default=1)
        if max_tokens < need:
            raise UnsupportedFeatureError(  # 400: what this model cannot do with the request's value
                f"max_tokens: {max_tokens} is too small; {self.model_type} needs at least {need} tokens to produce any audio in this voice", param="max_tokens"
            )

    def _first_segment_writes_voice(self, voice: Any) -> bool:
        """Whether the request's first segment spoken in ``voice`` (as :meth:`_resolve_voice`
        returned it) decides what the voice sounds like for its later segments, which then wait for
        it (Spark's created voices). Default: no, so all segments of a voice run at once."""
        return False

    def normalize(self, text: str) -> str:
        return normalize_text(text, language=self.language)

    def speed_plan(self, voice: VoiceParams) -> VoiceParams:
        """``voice`` with its speed met as this model can: ``speed`` a level the model applies
        natively (or None), ``tempo`` the factor left to time-stretch (or None).

        A model with native levels (Spark, Piper) takes a tempo that matches a level's
        (:data:`~fasttts.params.LEVEL_TEMPO`) as that level, and stretches any other; a model
        without (Orpheus) stretches a level by its tempo. Idempotent, so every path (requests,
        job planning, workers) may apply it."""
        level: str | None = voice.speed
        tempo = voice.tempo
        if self.capabilities.speed:
            if level is None and tempo is not None and (match := matching_level(tempo)) is not None:
                level, tempo = match, None
        elif level is not None:
            tempo = (tempo or 1.0) * LEVEL_TEMPO[level]
            level = None
        if tempo is not None and matching_level(tempo) == "moderate":
            tempo = None
        return voice if (level, tempo) == (voice.speed, voice.tempo) else replace(voice, speed=level, tempo=tempo)

    async def start(self) -> None:
        """Start background machinery (backend threads, batchers)."""

    async def shutdown(self) -> None:
        """Release the model."""

    @property
    def num_active(self) -> int:
        """Requests currently producing audio."""
        return self.stats.active

    # ------------------------------------------------------------------ public API
    async def speak(self, text: str, name: str | None = None, **kwargs: Unpack[SpeakKwargs]) -> np.ndarray:
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
        tempo: float | None = None,
        sampling: SamplingParams | None = None,
        split: SplitParams | None = None,
        _stream: bool = True,
    ) -> AsyncGenerator[np.ndarray, None]:
        """Synthesize ``text``, yielding audio chunks as soon as they are ready. ``speed`` is a
        level, ``tempo`` a factor (OpenAI ``speed``); any model meets either (:meth:`speed_plan`)."""
        voice = VoiceParams(
            name=name if name or gender else self.default_voice, gender=gender, pitch=pitch, speed=speed, instructions=instructions, tempo=tempo
        )
        async for chunk in self._run(await asyncio.to_thread(self.segments, text, voice, split), sampling, stream=_stream):
            yield chunk

    async def clone(self, text: str, reference_audio: bytes, reference_text: str | None = None, **kwargs: Unpack[CloneKwargs]) -> np.ndarray:
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
        tempo: float | None = None,
        sampling: SamplingParams | None = None,
        split: SplitParams | None = None,
        latent: bytes | None = None,
        _stream: bool = True,
    ) -> AsyncGenerator[np.ndarray, None]:
        if not self.capabilities.clone:
            raise UnsupportedFeatureError(f"{self.model_type} cannot clone from reference audio", param="reference_audio")
        if latent is not None and not self.capabilities.voice_latent:
            raise UnsupportedFeatureError(f"latent_file: the {self.model_type} model takes no reference latent", param="latent_file")
        voice = VoiceParams(reference_audio=reference_audio, reference_text=reference_text, pitch=pitch, speed=speed, tempo=tempo, reference_latent=latent)
        async for chunk in self._run(await asyncio.to_thread(self.segments, text, voice, split), sampling, stream=_stream):
            yield chunk

    async def multi_speak(self, text: str, **kwargs: Unpack[ScriptKwargs]) -> np.ndarray:
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
    ) -> AsyncGenerator[np.ndarray, None]:
        segments = await asyncio.to_thread(self.script_segments, text, default_voice=default_voice, split=split)
        async for chunk in self._run(segments, sampling, stream=_stream):
            yield chunk

    def script_segments(self, text: str, *, default_voice: str | None = None, split: SplitParams | None = None) -> list[Segment]:
        """Cut a multi-speaker script into segments, each with its voice (also used by job workers)."""
        segments: list[Segment] = []
        for part in parse_script(text, default_role=default_voice or self.default_voice):
            voice = self.speed_plan(VoiceParams(name=part.role, pitch=part.pitch, speed=part.speed))
            base = len(segments)
            segments.extend(Segment(t, voice, index=base + i) for i, t in enumerate(self._split(part.text, split)))
        return segments

    def segments(self, text: str, voice: VoiceParams, split: SplitParams | None = None) -> list[Segment]:
        """Cut text into the segments a request would synthesize (job workers store each one).
        Normalising may take a while (MegaTTS3's WeTextProcessing: seconds for a long text), so the
        request paths call this, and :meth:`script_segments`, off the event loop."""
        voice = self.speed_plan(voice)
        return [Segment(t, voice, index=i) for i, t in enumerate(self._split(text, split))]

    async def synthesize_segments(
        self, segments: list[Segment], sampling: SamplingParams | None = None, *, stream: bool = False
    ) -> AsyncGenerator[np.ndarray, None]:
        """Run prepared segments (crossfaded together): routes that build their own segments
        (MegaTTS3's clone with its latent) hand them over here."""
        async for chunk in self._run(segments, sampling, stream=stream):
            yield chunk

    async def synthesize_segment(self, segment: Segment, sampling: SamplingParams | None = None) -> np.ndarray:
        """Audio of a single segment, without any crossfade (job workers join segments later); its
        place among its request's segments is ``segment.extra["position"]`` (index, count)."""
        plan = self.speed_plan(segment.voice)
        self.check_max_tokens([plan], sampling)
        voice = await self._resolve_voice(plan)
        resolved = _segment_sampling((sampling or SamplingParams()).with_defaults(self.default_sampling), segment)
        token = SEGMENT_POSITION.set(segment.extra.get("position", (segment.index, None)))
        try:
            return await _collect(self._segment_audio(segment.text, (voice, plan.tempo), resolved, stream=False))
        finally:
            SEGMENT_POSITION.reset(token)

    # ------------------------------------------------------------------ pipeline
    def _split(self, text: str, split: SplitParams | None) -> list[str]:
        split = split or SplitParams()
        check_characters(text)
        pieces = split_text(self.normalize(text), self.count_tokens, split.length_threshold, split.window_size)
        return [p for p in pieces if p.strip()]

    async def _run(self, segments: list[Segment], sampling: SamplingParams | None, *, stream: bool) -> AsyncIterator[np.ndarray]:
        if not segments:
            raise InvalidRequestError("text is empty after normalisation", param="text")
        self.check_max_tokens([seg.voice for seg in segments], sampling)
        resolved = (sampling or SamplingParams()).with_defaults(self.default_sampling)
        voices: dict[int, tuple[Any, float | None]] = {}
        for seg in segments:  # resolve every voice before the first audio: errors come first
            key = id(seg.voice)
            if key not in voices:
                plan = self.speed_plan(seg.voice)
                voices[key] = (await self._resolve_voice(plan), plan.tempo)
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

    async def _segment_chunks(
        self, segments: list[Segment], voices: dict[int, tuple[Any, float | None]], sampling: SamplingParams, *, stream: bool
    ) -> AsyncIterator[np.ndarray | None]:
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
            if not self._first_segment_writes_voice(voices[key][0]):
                event.set()
        window = asyncio.Condition()
        delivering = [0]  # the index of the segment being delivered
        queues: list[asyncio.Queue[np.ndarray | BaseException | None]] = [asyncio.Queue() for _ in segments]

        async def run(index: int, seg: Segment, queue: asyncio.Queue[np.ndarray | BaseException | None]) -> None:
            key = id(seg.voice)
            try:
                async with window:
                    await window.wait_for(lambda: index < delivering[0] + SEGMENT_CONCURRENCY)
                if first_of[key] is not seg:
                    await written[key].wait()
                SEGMENT_POSITION.set((index, len(segments)))
                async for chunk in self._segment_audio(seg.text, voices[key], _segment_sampling(sampling, seg), stream=stream):
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

    async def _segment_audio(self, text: str, voice: tuple[Any, float | None], sampling: SamplingParams, *, stream: bool) -> AsyncIterator[np.ndarray]:
        """One segment's audio for a (resolved voice, tempo) pair: time-stretched by the tempo the
        voice's :meth:`speed_plan` left, chunk by chunk as it streams (off the event loop)."""
        resolved, tempo = voice
        chunks = self._segment_with_retry(text, resolved, sampling, stream=stream)
        if tempo is None:
            async for chunk in chunks:
                yield chunk
            return
        stretcher = TempoStretcher(self.sample_rate, tempo)
        async for chunk in chunks:
            out = await asyncio.to_thread(stretcher.process, chunk)
            if len(out):
                yield out
        tail = await asyncio.to_thread(stretcher.flush)
        if len(tail):
            yield tail

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
            new_seed = random.randrange(2**31) if sampling.seed is None else offset_seed(sampling.seed, 7919)
            logger.warning("segment %r produced no audio (attempt %d); retrying with seed %d", text[:40], attempt + 1, new_seed)
            sampling = sampling.with_seed(new_seed)
        raise GenerationError(f"the model produced no audio for the segment {text[:60]!r} after a retry with a new seed")


def _segment_sampling(sampling: SamplingParams, segment: Segment) -> SamplingParams:
    """Each segment of a seeded request gets its own derived seed, the same whether the segment
    runs in a request, alone in a job worker, or in ``fasttts infer``."""
    return sampling if sampling.seed is None else sampling.with_seed(offset_seed(sampling.seed, segment.index))


async def _collect(stream: AsyncIterator[np.ndarray]) -> np.ndarray:
    chunks = [c async for c in stream]
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
