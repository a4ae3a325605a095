"""MegaTTS3 as a FastTTS engine (``MegaTTS3DiTInfer`` of ``tts/infer_cli.py``, reorganised for
serving): a voice's context is computed once (aligner → phones, tones, durations; the ``.npy``
latent; loudness) and stored with the voice; each segment then runs

g2p (LLM backend, batched across requests, greedy, phone grammar) → duration LM (continuing the
voice's prompt state) → durations → DiT flow matching (the CFG rows of every concurrent request in
one forward, via a micro-batcher) → WaveVAE decode → loudness of the reference → 24 kHz.

Segments are independent given the voice, so they stream one by one, and a seed fixes every
random draw (jitter, DiT noise) per segment, whatever the batch it ran in.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import functools
import io
import logging
import random
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from fasttts.audio.io import load_audio
from fasttts.backends.base import LLMBackend
from fasttts.backends.registry import BackendConfig, create_backend
from fasttts.config import Settings
from fasttts.engine.base import SEGMENT_POSITION, Capabilities, TTSEngine
from fasttts.engine.batcher import MicroBatcher
from fasttts.errors import GenerationError, InvalidRequestError, ModelLoadError, NotFoundError, UnsupportedFeatureError
from fasttts.models.megatts3 import frontend
from fasttts.models.megatts3 import normalize as mega_normalize
from fasttts.models.megatts3.duration import DurationState
from fasttts.models.megatts3.g2p import MAX_NEW_TOKENS, G2PVocab, PhoneConstraint, split_merged
from fasttts.models.megatts3.layers import length_regulate
from fasttts.models.megatts3.loader import MegaParts, load_parts
from fasttts.models.megatts3.pipeline import DiTItem, decode_audio, dit_inputs, sample_batch, target_durations
from fasttts.models.megatts3.text import chunk_text
from fasttts.params import SamplingParams, SplitParams, VoiceParams
from fasttts.threads import run_in_fresh_thread

logger = logging.getLogger(__name__)

LATENT_DIM = 32
DEFAULT_STEPS = 32
DEFAULT_TEXT_WEIGHT = 1.6
DEFAULT_SPEAKER_WEIGHT = 2.5
DUR_DISTURB = 0.1
DUR_ALPHA = 1.0
DIT_BATCH = 8
"""Requests whose DiT sampling may share forwards (3 CFG rows each)."""
T = TypeVar("T")
DecodeItem = tuple[torch.Tensor, torch.Tensor]
"""What the WaveVAE micro-batcher decodes: (the DiT's latent [T, 32], the prompt latent [P, 32])."""


@dataclass
class MegaVoice:
    """A voice's preprocessed context (what ``preprocess`` returns), serialisable."""

    phones: list[int]
    tones: list[int]
    durations: list[int]
    latent: np.ndarray  # [P, 32] float32
    loudness: float
    reference_text: str | None = None
    prompt_state: DurationState | None = field(default=None, repr=False)

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": "mega",
            "phones": self.phones,
            "tones": self.tones,
            "durations": self.durations,
            "latent": base64.b64encode(self.latent.astype("<f4").tobytes()).decode(),
            "latent_frames": int(self.latent.shape[0]),
            "loudness": self.loudness,
            "reference_text": self.reference_text,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> MegaVoice:
        if state.get("kind") != "mega":
            raise InvalidRequestError(f"not a MegaTTS3 voice state: kind={state.get('kind')!r}", param="voice")
        try:
            latent = np.frombuffer(base64.b64decode(state["latent"]), dtype="<f4").reshape(int(state["latent_frames"]), LATENT_DIM).copy()
            phones, tones, durs = [int(x) for x in state["phones"]], [int(x) for x in state["tones"]], [int(x) for x in state["durations"]]
        except (KeyError, ValueError, TypeError) as exc:
            raise InvalidRequestError(f"a MegaTTS3 voice state is damaged: {exc}", param="voice") from exc
        if not (len(phones) == len(tones) == len(durs)) or not phones:
            raise InvalidRequestError("a MegaTTS3 voice state needs as many phones, tones and durations (at least one)", param="voice")
        return cls(phones, tones, durs, latent, float(state["loudness"]), state.get("reference_text"))

    @property
    def mel2ph(self) -> torch.Tensor:
        return length_regulate(torch.tensor([self.durations]))[0]


def read_latent(data: bytes, expected_frames: int) -> np.ndarray:
    """A ``.npy`` prompt latent → [P, 32] float32; 400-class errors name ``latent_file``."""
    try:
        array: np.ndarray = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as exc:
        raise InvalidRequestError(f"latent_file: not a .npy array ({exc})", param="latent_file") from exc
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2 or array.shape[1] != LATENT_DIM:
        raise InvalidRequestError(f"latent_file: expected shape [1, P, {LATENT_DIM}], got {list(np.shape(array))}", param="latent_file")
    if array.dtype not in (np.float32, np.float16, np.float64):
        raise InvalidRequestError(f"latent_file: expected float32, got {array.dtype}", param="latent_file")
    if array.shape[0] != expected_frames:
        raise InvalidRequestError(
            f"latent_file: {array.shape[0]} frames do not fit the reference audio, which needs {expected_frames} (25 per second of the padded reference)",
            param="latent_file",
        )
    if not np.isfinite(array).all():
        raise InvalidRequestError("latent_file: contains NaN or infinite values", param="latent_file")
    return array.astype(np.float32)


class MegaEngine(TTSEngine):
    model_type = "megatts3"
    sample_rate = 24000
    capabilities = Capabilities(clone=True, voice_latent=True)
    default_role_dir = "data/mega-roles"
    default_sampling = SamplingParams(temperature=0.0, top_k=1, top_p=1.0, repetition_penalty=1.0, max_tokens=MAX_NEW_TOKENS)
    segment_crossfade_s = 0.16
    default_voice = ""
    """No built-in voice: the first registered one, kept up to date as voices come and go (so
    OpenAI names fall back to a real voice)."""

    def __init__(
        self,
        *,
        parts: MegaParts,
        backend: LLMBackend,
        tokenizer: Any,
        device: str = "cpu",
        batch_size: int = DIT_BATCH,
        wait_timeout: float = 0.01,
        seed: int = 0,
        max_reference_seconds: float = 60.0,
    ) -> None:
        super().__init__(seed=seed)
        # a full WaveVAE (encoder included) computes the latent itself, as the reference does
        self.capabilities = Capabilities(clone=True, voice_latent=not parts.has_encoder)
        self.parts = parts
        self.backend = backend
        self.tokenizer = tokenizer
        self.vocab = G2PVocab.from_tokenizer(tokenizer)
        self.device = device
        self.max_reference_seconds = max_reference_seconds
        self._compute = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="mega-frontend")
        self._dit: MicroBatcher[DiTItem, torch.Tensor] = MicroBatcher(self._dit_batch, batch_size=batch_size, wait_timeout=wait_timeout, name="mega-dit")
        self._decoder: MicroBatcher[DecodeItem, torch.Tensor] = MicroBatcher(
            self._decode_batch, batch_size=batch_size, wait_timeout=wait_timeout, name="mega-decode"
        )
        self.dit_forward_rows: list[int] = []
        """The batch size (rows) of every DiT forward, for metrics and tests."""
        self._voices: dict[str, MegaVoice] = {}

    @classmethod
    def from_settings(cls, model_path: Path | None, settings: Settings, *, llm: LLMBackend | None = None) -> MegaEngine:
        """Load an official MegaTTS3 release directory unchanged (networks on ``--llm_device``)."""
        from fasttts.devices import resolve_device
        from fasttts.models.random_llm import load_tokenizer

        if model_path is None:
            raise ModelLoadError("MegaTTS3 needs --model_path (a MegaTTS3 release directory)")
        device = resolve_device(settings.detokenizer_device)
        parts = load_parts(model_path, device=device)
        tokenizer = load_tokenizer(parts.g2p_dir)
        if llm is None:
            constraint = PhoneConstraint(G2PVocab.from_tokenizer(tokenizer))
            llm = create_backend(settings.backend, BackendConfig.from_settings(settings, model_dir=str(parts.g2p_dir), output_ids=constraint.vocabulary()))
        return cls(
            parts=parts,
            backend=llm,
            tokenizer=tokenizer,
            device=device,
            batch_size=max(settings.batch_size, DIT_BATCH),
            wait_timeout=settings.wait_timeout,
            seed=settings.seed,
            max_reference_seconds=settings.max_reference_seconds,
        )

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        await asyncio.to_thread(mega_normalize.wetext)  # load the reference's normaliser, if installed, before the first text
        await self.backend.start()

    async def shutdown(self) -> None:
        await self.backend.shutdown()
        await self._dit.close()
        await self._decoder.close()
        self._compute.shutdown(wait=False, cancel_futures=True)

    @property
    def batchers(self) -> tuple[MicroBatcher[DiTItem, torch.Tensor], MicroBatcher[DecodeItem, torch.Tensor]]:
        return self._dit, self._decoder

    async def _run_compute(self, fn: Callable[..., T], *args: Any) -> T:
        """One frontend call at a time (the pool's one thread), each on a thread that ends with it:
        the pool's lasting thread only waits, so it holds no OpenMP team beside the g2p engine's."""
        return await asyncio.get_running_loop().run_in_executor(self._compute, run_in_fresh_thread, functools.partial(fn, *args))

    # ------------------------------------------------------------------ voices
    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def list_voices(self) -> list[str]:
        return sorted(self._voices)

    def normalize(self, text: str) -> str:
        return mega_normalize.normalize(text, language=self.language)

    def _split(self, text: str, split: SplitParams | None) -> list[str]:
        return chunk_text(self.normalize(text))

    async def add_voice(self, name: str, reference_audio: bytes, reference_text: str | None = None, *, latent: bytes | None = None) -> dict[str, Any]:
        voice = await self._preprocess(reference_audio, latent, reference_text)
        self._voices[name] = voice
        self._voices_changed()
        return voice.to_state()

    def load_voice(self, name: str, state: dict[str, Any]) -> None:
        self._voices[name] = MegaVoice.from_state(state)
        self._voices_changed()

    def remove_voice(self, name: str) -> None:
        if self._voices.pop(name, None) is None:
            raise NotFoundError(f"voice '{name}' not found", param="voice")
        self._voices_changed()

    def _voices_changed(self) -> None:
        self.default_voice = min(self._voices) if self._voices else ""

    async def _preprocess(self, audio_bytes: bytes, latent: bytes | None, reference_text: str | None) -> MegaVoice:
        """``preprocess``: alignment of the reference, its latent and loudness (once per voice)."""
        if latent is None and not self.parts.has_encoder:
            raise UnsupportedFeatureError(
                "latent_file: MegaTTS3 needs the reference's .npy latent (the release withholds the WaveVAE encoder)", param="latent_file"
            )
        wav = load_audio(audio_bytes, self.sample_rate, max_seconds=self.max_reference_seconds)
        if len(wav) < self.sample_rate // 10:
            raise InvalidRequestError("reference_audio: shorter than 0.1 s", param="reference_audio")
        win = self.parts.dit_config.win_size
        frames = frontend.prompt_frames(len(wav), win)
        padded = frontend.pad_reference(wav, win)
        # without the encoder, ``latent`` is there (checked above); with it, the encoder makes the latent
        latent_array = read_latent(latent, frames // 4) if latent is not None and not self.parts.has_encoder else None

        def align() -> tuple[list[int], list[int], list[int], float, np.ndarray]:
            mel = frontend.aligner_mel(padded).to(self.device)
            tokens = self.parts.aligner.align_tokens(mel)
            phones, tones, durs = frontend.split_alignment(tokens, mel.shape[-1])
            lat = latent_array
            if lat is None:  # the encoder's posterior sample, seeded so a voice is reproducible
                audio = torch.from_numpy(padded)[None].to(self.device)
                lat = self.parts.wavvae.encode_latent(audio, torch.Generator().manual_seed(self.seed))[0, : frames // 4].float().cpu().numpy()
            return phones, tones, durs, frontend.integrated_loudness(padded), lat

        phones, tones, durs, loudness, prompt_latent = await self._run_compute(align)
        if not phones:
            raise InvalidRequestError("reference_audio: the aligner found no phones in the reference", param="reference_audio")
        return MegaVoice(phones, tones, durs, prompt_latent, loudness, (reference_text or "").strip() or None)

    async def _resolve_voice(self, voice: VoiceParams) -> MegaVoice:
        if voice.state is not None:
            resolved = MegaVoice.from_state(voice.state)
        elif voice.reference_audio is not None:
            resolved = await self._preprocess(voice.reference_audio, voice.reference_latent, voice.reference_text)
        else:
            found = self._voices.get(voice.name or "")
            if found is None:
                available = ", ".join(self.list_voices()) or "none (add one with a reference .wav and its .npy latent)"
                raise NotFoundError(f"voice '{voice.name}' not found; available: {available}", param="voice")
            resolved = found
        if voice.pitch or voice.gender:  # speed is met by the engine's time-stretch (speed_plan)
            raise UnsupportedFeatureError("MegaTTS3 has no pitch or gender controls", param="pitch" if voice.pitch else "gender")
        if resolved.prompt_state is None:
            resolved.prompt_state = await self._run_compute(self._prompt_state, resolved)
        return resolved

    async def pin_voice(self, voice: VoiceParams, *, seed: int | None = None) -> dict[str, Any] | None:
        """A cloned reference (audio + latent) as a voice state, so a job's segments reuse one
        alignment instead of each re-running the aligner; a stored voice as its state, so a job
        carries it to workers that do not know it (and keeps it if it is deleted)."""
        if voice.state is None and voice.reference_audio is not None:
            return (await self._preprocess(voice.reference_audio, voice.reference_latent, voice.reference_text)).to_state()
        return (await self._resolve_voice(voice)).to_state()

    def _prompt_state(self, voice: MegaVoice) -> DurationState:
        """``make_dur_prompt``: the duration LM run over the reference's phones and codes."""
        code_size = self.parts.duration.cfg.code_size
        codes = torch.tensor(voice.durations).clamp(max=code_size - 1) + 1
        ph = torch.tensor([voice.phones], device=self.device)
        tn = torch.tensor([voice.tones], device=self.device)
        return self.parts.duration.prompt(ph, tn, codes[ph[0].cpu() > 0])

    # ------------------------------------------------------------------ synthesis
    async def _g2p(self, text: str, sampling: SamplingParams) -> tuple[list[int], list[int]]:
        text_ids = self.tokenizer.encode("<BOT>" + text + "<BOS>").ids
        request = self.vocab.request(text_ids, max_tokens=int(sampling.max_tokens or MAX_NEW_TOKENS), seed=sampling.seed)
        generated = self.backend.generate(request)
        try:
            ids = [t async for t in generated]
        finally:
            await generated.aclose()
        return split_merged(self.vocab.merged(ids))

    async def _segment_stream(self, text: str, voice: MegaVoice, sampling: SamplingParams, *, stream: bool) -> AsyncIterator[np.ndarray]:
        index, count = SEGMENT_POSITION.get() or (0, 1)
        seed = sampling.seed if sampling.seed is not None else random.randrange(2**31)
        generator = torch.Generator().manual_seed(seed)
        phones, tones = await self._g2p(text, sampling)
        options = sampling_options(sampling)

        def durations() -> torch.Tensor:
            assert voice.prompt_state is not None
            codes = self.parts.duration.predict(voice.prompt_state, torch.tensor([phones], device=self.device), torch.tensor([tones], device=self.device))
            n = len(codes)
            return target_durations(
                codes, phones[:n], first=index == 0, final=count is None or index == count - 1, disturb=DUR_DISTURB, alpha=DUR_ALPHA, generator=generator
            )

        dur = await self._run_compute(durations)
        n = len(dur)
        inputs = dit_inputs(voice.phones, voice.tones, voice.mel2ph, phones[:n], tones[:n], dur, torch.from_numpy(voice.latent), 4)
        item = DiTItem(*inputs, steps=options["steps"], text_weight=options["text_weight"], speaker_weight=options["speaker_weight"], generator=generator)
        latent = await self._dit.submit(item)
        decoded = await self._decoder.submit((latent, torch.from_numpy(voice.latent)))
        wav = frontend.match_loudness(decoded.numpy(), voice.loudness)
        if not len(wav):
            raise GenerationError("the segment decoded to no audio")
        yield wav

    def _dit_batch(self, items: Sequence[DiTItem]) -> list[torch.Tensor]:
        return sample_batch(self.parts.dit, items, self.device, on_forward=self.dit_forward_rows.append)

    def _decode_batch(self, items: Sequence[DecodeItem]) -> list[torch.Tensor]:
        return [decode_audio(self.parts.wavvae, latent, prompt, self.device) for latent, prompt in items]


def sampling_options(sampling: SamplingParams) -> dict[str, Any]:
    """The DiT's request options (defaults: the reference CLI's 32 steps, p_w 1.6, t_w 2.5)."""
    return {
        "steps": sampling.diffusion_steps or DEFAULT_STEPS,
        "text_weight": DEFAULT_TEXT_WEIGHT if sampling.text_weight is None else sampling.text_weight,
        "speaker_weight": DEFAULT_SPEAKER_WEIGHT if sampling.speaker_weight is None else sampling.speaker_weight,
    }
