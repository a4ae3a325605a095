"""Spark-TTS-0.5B as a FastTTS engine: prompts → LLM backend (grammar-constrained) → BiCodec.

The LLM runs on any backend behind :class:`~fasttts.backends.base.LLMBackend`; the codec stages
(reference encoding, decoding) go through :class:`~fasttts.engine.batcher.MicroBatcher`, so
concurrent requests share batched codec calls off the event loop.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from fasttts.audio.io import load_audio
from fasttts.backends.base import GenerationRequest, LLMBackend
from fasttts.backends.registry import BackendConfig, create_backend
from fasttts.config import Settings
from fasttts.devices import resolve_device
from fasttts.engine.base import Capabilities, TTSEngine
from fasttts.engine.batcher import MicroBatcher
from fasttts.engine.streaming import ChunkedDecoder
from fasttts.errors import GenerationError, InvalidRequestError, ModelLoadError, NotFoundError, UnsupportedFeatureError
from fasttts.models.spark.tokens import NUM_GLOBAL, SparkGrammar, SparkVocab
from fasttts.params import GENDERS, LEVELS, SamplingParams, VoiceParams

logger = logging.getLogger(__name__)

BUILTIN_VOICES = GENDERS  # created voices: "female", "male"
FREEZE_TEXT = "This is the voice that will be kept."

# Streaming: first audio comes as soon as the decoder can make it exactly. The first chunk is 2
# tokens (640 samples: the segment joiner blends a segment's first chunk over its 320-sample
# crossfade and needs twice that to blend as a whole-file join does), after STREAM_LOOKAHEAD more
# semantic tokens (plus, for a created voice, its 39-token prefix); chunks then grow up to 4 s.
# `bench/bench_lookahead.py` on the full-size BiCodec: one token moves the audio of 19 tokens
# before and after it; streaming with 19 of lookahead equals the one-shot decode to 3e-4 of the
# peak, with 17 it misses the 1e-3 bound. The left context only costs decode time, not latency:
# 20 (17 measured enough).
# Every later window decodes its 39 tokens of context again. On a GPU that costs next to nothing,
# and chunks that double keep a faster-than-real-time stream gapless. On a CPU, each window's
# context is ~0.4 s of BiCodec work taken from the LLM, so chunks grow 8x there (2, 16, 128, 200):
# measured on a 2-core Xeon, bfloat16, 120 tokens, stream against whole file 1.25x -> 1.08x for one
# request; 8 concurrent streams 31 -> 21 s, first audio unchanged.
STREAM_FIRST_CHUNK = 2
STREAM_MAX_CHUNK = 200
STREAM_GROWTH = 2.0  # each chunk this many times the last, up to STREAM_MAX_CHUNK
STREAM_GROWTH_CPU = 8.0  # where the detokenizer runs on a CPU
STREAM_LEFT_CONTEXT = 20
STREAM_LOOKAHEAD = 19
STREAM_CROSSFADE = 640

CodecIds = tuple[np.ndarray, np.ndarray]
"""(global ids, semantic ids): what the codec's encoder returns and its decoder takes."""


@dataclass(frozen=True)
class SparkVoice:
    """What conditions Spark's voice. ``kind``: create | frozen | clone."""

    kind: str
    gender: int = 0
    pitch: int = 2
    speed: int = 2
    acoustic: tuple[int, int] | None = None  # frozen: (pitch value 0..1000, speed value 0..10)
    global_ids: tuple[int, ...] | None = None  # frozen, clone: the 32 speaker tokens
    semantic_ids: tuple[int, ...] | None = None  # clone with transcript: reference semantics
    reference_text: str | None = None
    style: tuple[int, int] | None = field(default=None)  # clone: optional pitch/speed labels
    written: list[tuple[tuple[int, int], tuple[int, ...]]] = field(default_factory=list, compare=False, repr=False)
    """create: the (acoustic values, global ids) the first segment of this request wrote; later
    segments of the request reuse them so a long text keeps one voice. Never stored."""

    def to_state(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items() if v is not None and k != "written"}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SparkVoice:
        values: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v) for k, v in state.items() if k in cls.__dataclass_fields__}
        if values.get("kind") not in ("create", "frozen", "clone"):
            raise InvalidRequestError(f"not a Spark voice state: kind={values.get('kind')!r}", param="voice")
        if values["kind"] in ("frozen", "clone") and len(values.get("global_ids") or ()) != NUM_GLOBAL:
            raise InvalidRequestError(f"a Spark voice needs exactly {NUM_GLOBAL} global tokens", param="voice")
        return cls(**values)


class SparkEngine(TTSEngine):
    model_type = "spark"
    sample_rate = 16000
    capabilities = Capabilities(clone=True, create=True, pitch=True, speed=True)
    default_voice = "female"
    default_sampling = SamplingParams(temperature=0.8, top_k=50, top_p=0.95, repetition_penalty=1.0, max_tokens=4096)

    def __init__(
        self,
        *,
        codec: Any,
        backend: LLMBackend,
        tokenizer: Any,
        batch_size: int = 1,
        wait_timeout: float = 0.01,
        seed: int = 0,
        fix_voice: bool = False,
        max_reference_seconds: float = 60.0,
    ) -> None:
        super().__init__(seed=seed)
        self.codec = codec
        self.backend = backend
        self.tokenizer = tokenizer
        self.vocab = SparkVocab.from_tokenizer(tokenizer)
        self.fix_voice = fix_voice
        self.max_reference_seconds = max_reference_seconds
        self._encoder: MicroBatcher[np.ndarray, CodecIds] = MicroBatcher(
            codec.tokenize_batch, batch_size=batch_size, wait_timeout=wait_timeout, name="spark-encode"
        )
        self._decoder: MicroBatcher[CodecIds, np.ndarray] = MicroBatcher(
            codec.detokenize_batch, batch_size=batch_size, wait_timeout=wait_timeout, name="spark-decode"
        )
        self._voices: dict[str, SparkVoice] = {}

    @classmethod
    def from_settings(cls, model_path: Path | None, settings: Settings, *, llm: LLMBackend | None = None) -> SparkEngine:
        """Load an official Spark-TTS-0.5B directory (``LLM/``, ``BiCodec/``,
        ``wav2vec2-large-xlsr-53/``, ``config.yaml``) unchanged."""
        from tokenizers import Tokenizer

        from fasttts.models.spark.codec import SparkCodec

        if model_path is None:
            raise ModelLoadError("Spark-TTS needs --model_path (a Spark-TTS-0.5B directory)")
        root = model_path
        for part in (
            "config.yaml",
            "LLM/config.json",
            "LLM/tokenizer.json",
            "BiCodec/config.yaml",
            "BiCodec/model.safetensors",
            "wav2vec2-large-xlsr-53/config.json",
        ):
            if not (root / part).exists():
                raise ModelLoadError(f"not a Spark-TTS directory: {root / part} is missing")
        codec = SparkCodec.load(
            root,
            tokenizer_device=resolve_device(settings.tokenizer_device),
            detokenizer_device=resolve_device(settings.detokenizer_device),
            attn_implementation=settings.wav2vec_attn_implementation,
        )
        tokenizer = Tokenizer.from_file(str(root / "LLM" / "tokenizer.json"))
        if llm is None:
            if settings.torch_dtype == "float16":
                logger.warning(
                    "Spark-TTS's LLM overflows in float16 (it outputs garbage); promoting --torch_dtype float16 to float32 on CPU / bfloat16 on CUDA"
                )
            output_ids = SparkGrammar(SparkVocab.from_tokenizer(tokenizer), "create").vocabulary()
            config = BackendConfig.from_settings(settings, model_dir=str(root / "LLM"), output_ids=output_ids)
            if settings.torch_dtype == "float16":  # float32 on CPU, as the warning says (auto may pick bfloat16 there)
                config = replace(config, dtype="bfloat16" if resolve_device(settings.llm_device).startswith("cuda") else "float32")
            llm = create_backend(settings.backend, config)
        return cls(
            codec=codec,
            backend=llm,
            tokenizer=tokenizer,
            batch_size=settings.batch_size,
            wait_timeout=settings.wait_timeout,
            seed=settings.seed,
            fix_voice=settings.fix_voice,
            max_reference_seconds=settings.max_reference_seconds,
        )

    # ------------------------------------------------------------------ codec API
    async def tokenize(self, audio: np.ndarray) -> CodecIds:
        """16 kHz mono audio → (32 global ids, semantic ids), through the micro-batcher."""
        return await self._encoder.submit(np.asarray(audio, dtype=np.float32))

    async def detokenize(self, global_ids: Sequence[int], semantic_ids: Sequence[int]) -> np.ndarray:
        """(32 global ids, semantic ids) → 16 kHz audio, 320 samples per semantic token."""
        return await self._decoder.submit((np.asarray(global_ids, dtype=np.int64), np.asarray(semantic_ids, dtype=np.int64)))

    @property
    def batchers(self) -> tuple[MicroBatcher[np.ndarray, CodecIds], MicroBatcher[CodecIds, np.ndarray]]:
        return self._encoder, self._decoder

    # ------------------------------------------------------------------ voices
    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def list_voices(self) -> list[str]:
        return [*BUILTIN_VOICES, *sorted(n for n in self._voices if n not in BUILTIN_VOICES)]

    async def add_voice(self, name: str, reference_audio: bytes, reference_text: str | None = None, *, latent: bytes | None = None) -> dict[str, Any]:
        if latent is not None:
            raise UnsupportedFeatureError(f"latent_file: the {self.model_type} model takes no reference latent", param="latent_file")
        voice = await self._clone_voice(VoiceParams(reference_audio=reference_audio, reference_text=reference_text))
        self._voices[name] = voice
        return voice.to_state()

    def load_voice(self, name: str, state: dict[str, Any]) -> None:
        self._voices[name] = SparkVoice.from_state(state)

    def remove_voice(self, name: str) -> None:
        if self._voices.pop(name, None) is None:
            raise NotFoundError(f"voice '{name}' not found", param="voice")

    async def freeze_voice(self, name: str, voice: VoiceParams, *, seed: int | None = None) -> dict[str, Any]:
        """Generate a created voice once and keep its acoustic and global tokens, so ``name``
        sounds the same on every later request (and after export/import as JSON)."""
        frozen = await self._freeze(self._created(voice), seed)
        self._voices[name] = frozen
        return frozen.to_state()

    async def pin_voice(self, voice: VoiceParams, *, seed: int | None = None) -> dict[str, Any] | None:
        resolved = await self._resolve_voice(voice)
        if resolved.kind == "create":
            resolved = await self._freeze(resolved, random.randrange(2**31) if seed is None else seed)
        return resolved.to_state()

    async def _freeze(self, created: SparkVoice, seed: int | None) -> SparkVoice:
        """The frozen voice that one create-mode generation of :data:`FREEZE_TEXT` writes."""
        vocab = self.vocab
        prompt = vocab.create_prompt(self._encode(FREEZE_TEXT), created.gender, created.pitch, created.speed)
        grammar = SparkGrammar(vocab, "create")
        sampling = SamplingParams(seed=self.seed if seed is None else seed).with_defaults(self.default_sampling)
        request = GenerationRequest.from_sampling(prompt, sampling, stop_ids=vocab.stop_ids, constraint=grammar, max_tokens=grammar.prefix_length)
        tokens = [t async for t in self.backend.generate(request)]
        if len(tokens) < grammar.prefix_length:
            raise GenerationError("the model stopped before writing the voice's global tokens")
        acoustic, global_ids = self._written_voice(tokens)
        return SparkVoice("frozen", created.gender, created.pitch, created.speed, acoustic=acoustic, global_ids=global_ids)

    def _written_voice(self, prefix: Sequence[int]) -> tuple[tuple[int, int], tuple[int, ...]]:
        """(pitch and speed values, global ids) from what a create-mode request wrote before its
        first semantic token (the layout of :class:`SparkGrammar` in ``"create"`` mode)."""
        v = self.vocab
        return (prefix[1] - v.pitch_value0, prefix[2] - v.speed_value0), tuple(t - v.global0 for t in prefix[5 : 5 + NUM_GLOBAL])

    async def start(self) -> None:
        await self.backend.start()
        if self.fix_voice:
            for gender in BUILTIN_VOICES:
                if gender not in self._voices:
                    await self.freeze_voice(gender, VoiceParams(gender=gender))

    async def shutdown(self) -> None:
        await self.backend.shutdown()
        await self._encoder.close()
        await self._decoder.close()

    def _created(self, voice: VoiceParams) -> SparkVoice:
        gender = voice.gender or voice.name or self.default_voice
        if gender not in GENDERS:
            raise NotFoundError(f"voice '{gender}' not found; available: {', '.join(self.list_voices())}", param="voice")
        return SparkVoice("create", GENDERS.index(gender), LEVELS.index(voice.pitch or "moderate"), LEVELS.index(voice.speed or "moderate"))

    async def _clone_voice(self, voice: VoiceParams) -> SparkVoice:
        assert voice.reference_audio is not None
        audio = load_audio(voice.reference_audio, self.sample_rate, max_seconds=self.max_reference_seconds)
        if len(audio) < self.sample_rate // 10:
            raise InvalidRequestError("reference audio is shorter than 0.1 s", param="reference_audio")
        global_ids, semantic_ids = await self.tokenize(audio)
        text = (voice.reference_text or "").strip() or None
        style = (LEVELS.index(voice.pitch or "moderate"), LEVELS.index(voice.speed or "moderate")) if (voice.pitch or voice.speed) else None
        return SparkVoice(
            "clone",
            global_ids=tuple(int(g) for g in global_ids),
            semantic_ids=tuple(int(s) for s in semantic_ids) if text else None,
            reference_text=text,
            style=style,
        )

    async def _resolve_voice(self, voice: VoiceParams) -> SparkVoice:
        if voice.state is None and voice.reference_audio is not None:
            return await self._clone_voice(voice)
        return self._known_voice(voice)

    def _known_voice(self, voice: VoiceParams) -> SparkVoice:
        """A voice that needs no model work: pinned state, stored, or created from labels."""
        if voice.state is not None:
            return SparkVoice.from_state(voice.state)
        stored = self._voices.get(voice.name or "") if not voice.gender else None
        if stored is None:
            return self._created(voice)
        if stored.kind == "frozen" and (voice.pitch or voice.speed):
            # a frozen voice keeps its timbre; other pitch/speed labels re-create it from labels
            return SparkVoice("create", stored.gender, LEVELS.index(voice.pitch or LEVELS[stored.pitch]), LEVELS.index(voice.speed or LEVELS[stored.speed]))
        if stored.kind == "clone" and (voice.pitch or voice.speed):
            return SparkVoice(**{**stored.__dict__, "style": (LEVELS.index(voice.pitch or "moderate"), LEVELS.index(voice.speed or "moderate"))})
        return stored

    def min_tokens(self, voice: VoiceParams) -> int:
        """What the grammar makes the model write before its first semantic token, plus that token:
        a created voice first writes its acoustic values and 32 global tokens (40 in all); given
        globals leave ``<|start_semantic_token|>`` (2); a transcribed clone opens the semantics (1)."""
        if voice.state is None and voice.reference_audio is not None:
            mode = "semantic" if (voice.reference_text or "").strip() else "after_globals"
        else:
            mode = _grammar_mode(self._known_voice(voice))
        return SparkGrammar(self.vocab, mode).prefix_length + 1

    # ------------------------------------------------------------------ synthesis
    def _first_segment_writes_voice(self, voice: SparkVoice) -> bool:
        # a created voice is whatever its first segment writes; later segments reuse it
        return voice.kind == "create"

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def _prompt(self, text: str, voice: SparkVoice) -> tuple[list[int], SparkGrammar]:
        vocab = self.vocab
        grammar = SparkGrammar(vocab, _grammar_mode(voice))
        if voice.kind == "create":
            return vocab.create_prompt(self._encode(text), voice.gender, voice.pitch, voice.speed), grammar
        assert voice.global_ids is not None
        if voice.kind == "frozen":
            assert voice.acoustic is not None
            return vocab.frozen_prompt(self._encode(text), voice.gender, voice.pitch, voice.speed, voice.acoustic, voice.global_ids), grammar
        content = self._encode((voice.reference_text or "") + text)
        return vocab.clone_prompt(content, voice.global_ids, voice.semantic_ids, voice.style), grammar

    async def _segment_stream(self, text: str, voice: SparkVoice, sampling: SamplingParams, *, stream: bool) -> AsyncIterator[np.ndarray]:
        created = voice
        if voice.kind == "create" and voice.written:  # not the request's first segment: keep its voice
            acoustic, globals_ = voice.written[0]
            voice = SparkVoice("frozen", voice.gender, voice.pitch, voice.speed, acoustic=acoustic, global_ids=globals_)
        prompt, grammar = self._prompt(text, voice)
        request = GenerationRequest.from_sampling(prompt, sampling, stop_ids=self.vocab.stop_ids, constraint=grammar)
        vocab = self.vocab
        g_lo, g_hi = vocab.global_range()
        s_lo, s_hi = vocab.semantic_range()
        global_ids: list[int] = list(voice.global_ids or ())
        semantic: list[int] = []
        prefix: list[int] = []  # the tokens before the first semantic one (create: the voice)

        async def decode(tokens: Sequence[int]) -> np.ndarray:
            return await self.detokenize(global_ids, tokens)

        chunker = ChunkedDecoder(
            decode, hop=320, first_chunk=STREAM_FIRST_CHUNK, max_chunk=STREAM_MAX_CHUNK,
            left_context=STREAM_LEFT_CONTEXT, lookahead=STREAM_LOOKAHEAD, crossfade=STREAM_CROSSFADE,
            growth=STREAM_GROWTH_CPU if self.codec.detokenizer_device.type == "cpu" else STREAM_GROWTH,
        )  # fmt: skip
        generated = self.backend.generate(request)
        try:
            async for token in generated:
                if len(prefix) < grammar.prefix_length:
                    prefix.append(token)
                if s_lo <= token < s_hi:
                    semantic.append(token - s_lo)
                    if stream:
                        for chunk in await chunker.push([token - s_lo]):
                            yield chunk
                elif voice.kind == "create" and g_lo <= token < g_hi and len(global_ids) < NUM_GLOBAL:
                    global_ids.append(token - g_lo)
        finally:
            await generated.aclose()
        if not semantic:
            return
        if len(global_ids) != NUM_GLOBAL:
            raise GenerationError(f"the model wrote {len(global_ids)} global tokens instead of {NUM_GLOBAL}")
        if voice.kind == "create" and not created.written:
            created.written.append(self._written_voice(prefix))
        if stream:
            for chunk in await chunker.flush():
                yield chunk
        else:
            yield await decode(semantic)


def _grammar_mode(voice: SparkVoice) -> str:
    """Where the prompt of ``voice`` leaves the model (see :class:`SparkGrammar`)."""
    if voice.kind == "create":
        return "create"
    return "semantic" if voice.kind == "clone" and voice.semantic_ids is not None else "after_globals"
