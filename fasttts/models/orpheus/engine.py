"""Orpheus-TTS as a FastTTS engine: prompt → LLM backend (frame grammar) → SNAC → audio.

The LLM (a Hugging Face Llama directory) runs on any backend behind
:class:`~fasttts.backends.base.LLMBackend`, constrained by :class:`OrpheusConstraint` so its
answer is always whole frames of in-band codes. SNAC decoding of all concurrent requests goes
through one :class:`~fasttts.engine.batcher.MicroBatcher` (batched calls, off the event loop).

Unlike the reference server, every frame comes out: streaming decodes overlapping windows with
3 frames of context on each side (more than SNAC's ~2.25-frame receptive field), so the stream
equals a one-shot decode of all frames to within float rounding
(:data:`~fasttts.models.orpheus.snac_codec.SPLICE_TOLERANCE`), first and last included, and a
one-frame answer still gives its 2048 samples. What Orpheus cannot do: cloning, voice creation and pitch raise
:class:`~fasttts.errors.UnsupportedFeatureError`; free-text instructions map onto nothing and
are ignored. Speed (a level or a factor) is met by the engine's time-stretching
(:meth:`~fasttts.engine.base.TTSEngine.speed_plan`): the model's own pace follows the text and
its sampling settings.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fasttts.backends.base import GenerationRequest, LLMBackend
from fasttts.backends.registry import BackendConfig, create_backend
from fasttts.config import Settings
from fasttts.devices import resolve_device
from fasttts.engine.base import Capabilities, TTSEngine
from fasttts.engine.batcher import MicroBatcher
from fasttts.engine.streaming import ChunkedDecoder
from fasttts.errors import BackendError, ModelLoadError, NotFoundError, UnsupportedFeatureError
from fasttts.models.orpheus.constraint import OrpheusConstraint
from fasttts.models.orpheus.prompt import FRAME_CODES, OrpheusVocab, build_prompt
from fasttts.models.orpheus.snac_codec import DecodeItem, SnacCodec
from fasttts.models.orpheus.voices import NO_VOICE, VOICES, declared_voices, find_voice, resolve_language
from fasttts.models.random_llm import load_tokenizer
from fasttts.params import SamplingParams, VoiceParams

# Streaming, in SNAC frames (2048 samples, 85 ms): the first chunk covers 2 frames and is sent
# once 2 + 3 frames exist (≈ 35 audio tokens); chunks then double up to 32 frames. 3 frames of
# left context and lookahead exceed the decoder's receptive field (about 2.25 frames, 4.6k samples),
# so windows splice to within float rounding (SPLICE_TOLERANCE) and the 256-sample crossfade
# (inside the lookahead) is a safety seam.
STREAM_FIRST_CHUNK = 2
STREAM_MAX_CHUNK = 32
STREAM_LEFT_CONTEXT = 3
STREAM_LOOKAHEAD = 3
STREAM_CROSSFADE = 256


@dataclass(frozen=True)
class OrpheusVoice:
    """A resolved voice: the speaker name exactly as the checkpoint was trained on it, or None
    for the text alone (:data:`~fasttts.models.orpheus.voices.NO_VOICE`)."""

    name: str | None


class OrpheusEngine(TTSEngine):
    """Orpheus 3B ("ft" checkpoints) with SNAC 24 kHz.

    Voices are the checkpoint's fixed speakers (:data:`~fasttts.models.orpheus.voices.VOICES`
    for its language, or the ``voices`` its ``config.json`` declares), plus ``none``: the text
    alone, the default when the model declares no voices. Inline emotion tags (``<laugh>``, ``<sigh>``, …) pass through text
    normalisation untouched and reach the prompt as written. Orpheus has no speed control (its
    reference notes that higher temperature and repetition penalty make it speak faster, which we
    do not tie to the speed label), so speed is time-stretched by the engine.
    """

    model_type = "orpheus"
    sample_rate = 24000
    capabilities = Capabilities(clone=False, create=False, pitch=False, speed=False, emotion_tags=True)
    default_sampling = SamplingParams(temperature=0.6, top_k=0, top_p=0.8, repetition_penalty=1.3, max_tokens=1200)
    default_voice = VOICES["en"][0]

    def __init__(
        self,
        *,
        backend: LLMBackend,
        tokenizer: Any,
        codec: SnacCodec,
        language: str = "en",
        voices: tuple[str, ...] | None = None,
        batch_size: int = 1,
        wait_timeout: float = 0.01,
        seed: int = 0,
    ) -> None:
        super().__init__(seed=seed, language=language)
        self.backend = backend
        self.tokenizer = tokenizer
        self.vocab = OrpheusVocab.from_tokenizer(tokenizer)
        self.codec = codec
        if codec.frame_samples != 2048 or codec.sample_rate != self.sample_rate:
            raise ModelLoadError(f"Orpheus needs SNAC 24 kHz with 2048-sample frames, got {codec.sample_rate} Hz / {codec.frame_samples}")
        self.voices = VOICES[language] if voices is None else voices
        self.default_voice = self.voices[0] if self.voices else NO_VOICE
        self._constraint = OrpheusConstraint(self.vocab)
        self._decoder: MicroBatcher[DecodeItem, np.ndarray] = MicroBatcher(
            codec.decode_batch, batch_size=batch_size, wait_timeout=wait_timeout, name="snac-decode"
        )

    @classmethod
    def from_settings(cls, model_path: Path | None, settings: Settings, *, llm: LLMBackend | None = None) -> OrpheusEngine:
        """Load a released Orpheus directory unchanged.

        ``model_path`` is the LLM directory; SNAC is read from ``--snac_path``, else
        ``model_path/snac``. The language (which picks the voice list) is ``--lang``, else a
        ``language`` field in the LLM ``config.json``, else English — never guessed from the
        directory name.
        """
        if model_path is None:
            raise ModelLoadError("Orpheus needs --model_path (an Orpheus LLM directory)")
        root = model_path
        for part in ("config.json", "tokenizer.json"):
            if not (root / part).exists():
                raise ModelLoadError(f"not an Orpheus LLM directory: {root / part} is missing")
        snac_dir = Path(settings.snac_path) if settings.snac_path else root / "snac"
        language = resolve_language(settings.lang, root)
        codec = SnacCodec.load(snac_dir, device=resolve_device(settings.detokenizer_device), noise_seed=settings.seed)
        tokenizer = load_tokenizer(root)
        if llm is None:
            output_ids = OrpheusConstraint(OrpheusVocab.from_tokenizer(tokenizer)).vocabulary()
            llm = create_backend(settings.backend, BackendConfig.from_settings(settings, model_dir=str(root), output_ids=output_ids))
        return cls(
            backend=llm,
            tokenizer=tokenizer,
            codec=codec,
            language=language,
            voices=declared_voices(language, root),
            batch_size=settings.batch_size,
            wait_timeout=settings.wait_timeout,
            seed=settings.seed,
        )

    # ------------------------------------------------------------------ engine hooks
    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def list_voices(self) -> list[str]:
        return [*self.voices, NO_VOICE]

    @property
    def decoder_batcher(self) -> MicroBatcher[DecodeItem, np.ndarray]:
        """The SNAC micro-batcher (its counters show how well decoding is batched)."""
        return self._decoder

    async def start(self) -> None:
        await self.backend.start()

    async def shutdown(self) -> None:
        await self.backend.shutdown()
        await self._decoder.close()

    async def _resolve_voice(self, voice: VoiceParams) -> OrpheusVoice:
        if voice.reference_audio is not None:
            raise UnsupportedFeatureError("Orpheus cannot clone a voice from reference audio", param="reference_audio")
        if voice.pitch is not None:
            raise UnsupportedFeatureError("Orpheus has no pitch control", param="pitch")
        if voice.name is None and voice.gender is not None:
            raise UnsupportedFeatureError("Orpheus cannot create a voice from a gender; choose one of its voices", param="gender")
        wanted = voice.name or self.default_voice
        if wanted.strip().casefold() == NO_VOICE:
            return OrpheusVoice(None)
        name = find_voice(self.voices, wanted)
        if name is None:
            raise NotFoundError(f"voice '{voice.name}' not found; available: {', '.join(self.list_voices())}", param="voice")
        return OrpheusVoice(name)

    def min_tokens(self, voice: VoiceParams) -> int:
        """One whole SNAC frame: fewer audio tokens decode to nothing."""
        return FRAME_CODES

    def prompt_ids(self, text: str, voice: str | None) -> list[int]:
        """The exact prompt the LLM sees for ``voice`` (None: no speaker name) speaking (already
        normalised) ``text``."""
        return build_prompt(self.tokenizer, self.vocab, voice, text)

    def _request(self, prompt: list[int], sampling: SamplingParams) -> GenerationRequest:
        # whole frames only: a cut at max_tokens must not leave a partial frame behind (requests
        # below one frame were refused by check_max_tokens)
        requested = sampling.max_tokens or self.default_sampling.max_tokens or FRAME_CODES
        return GenerationRequest.from_sampling(
            prompt,
            sampling,
            stop_ids=self.vocab.stop_ids,
            constraint=self._constraint,
            max_tokens=requested // FRAME_CODES * FRAME_CODES,
            request_id=uuid.uuid4().hex,
        )

    async def generate_frames(self, text: str, voice: OrpheusVoice, sampling: SamplingParams) -> AsyncGenerator[np.ndarray, None]:
        """The LLM's answer as SNAC frames (7 codes each), one at a time as they complete."""
        request = self._request(self.prompt_ids(text, voice.name), sampling)
        codes: list[int] = []
        index = 0
        generated = self.backend.generate(request)
        try:
            async for token in generated:
                if token in request.stop_ids:
                    break
                code = self.vocab.code(token, index)
                if code is None:
                    raise BackendError(f"the {self.backend.name} backend emitted token {token} outside frame position {index % FRAME_CODES}'s band")
                codes.append(code)
                index += 1
                if len(codes) == FRAME_CODES:
                    yield np.asarray(codes, dtype=np.int64)
                    codes = []
        finally:
            await generated.aclose()

    async def _segment_stream(self, text: str, voice: OrpheusVoice, sampling: SamplingParams, *, stream: bool) -> AsyncIterator[np.ndarray]:
        frames: list[np.ndarray] = []
        finished = False

        async def decode(indices: Sequence[int]) -> np.ndarray:
            lo, hi = indices[0], indices[-1] + 1
            item = DecodeItem(np.stack(frames[lo:hi]), start=lo, at_end=finished and hi == len(frames))
            return await self._decoder.submit(item)

        chunker = ChunkedDecoder(
            decode, hop=self.codec.frame_samples, first_chunk=STREAM_FIRST_CHUNK, max_chunk=STREAM_MAX_CHUNK,
            left_context=STREAM_LEFT_CONTEXT, lookahead=STREAM_LOOKAHEAD, crossfade=STREAM_CROSSFADE,
        )  # fmt: skip
        async with aclosing(self.generate_frames(text, voice, sampling)) as answer:
            async for frame in answer:
                frames.append(frame)
                if stream:
                    for chunk in await chunker.push([len(frames) - 1]):
                        yield chunk
        if not frames:
            return
        finished = True
        if stream:
            for chunk in await chunker.flush():
                yield chunk
        else:
            yield await self._decoder.submit(DecodeItem(np.stack(frames), start=0, at_end=True))
