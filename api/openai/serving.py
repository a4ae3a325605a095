"""OpenAI speech request → engine call → audio bytes or SSE.

Maps what OpenAI clients send onto what the loaded model offers: model aliases, OpenAI voice
names (a default table, overridable with ``settings.openai_voice_map``), the continuous ``speed``
onto the engine's tempo (native where a model's speed level matches it, time-stretched otherwise),
and ``pcm`` onto OpenAI's 24 kHz.
"""

from __future__ import annotations

import time

from fastapi import Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api.disconnect import unless_disconnected
from api.job_routing import job_spec, run_as_job, should_route
from api.openai.protocol import (
    OPENAI_MODELS,
    OPENAI_PCM_RATE,
    OPENAI_VOICES,
    AudioModel,
    AudioModelList,
    ModelCard,
    ModelList,
    OpenAISpeechRequest,
    VoiceInfo,
    VoiceList,
)
from api.schemas import SamplingFields
from api.streaming import sse_response
from api.synthesis import check_pitch, check_text, respond, start_source
from fasttts.config import Settings
from fasttts.engine.base import SpeakKwargs, TTSEngine
from fasttts.errors import NotFoundError

DEFAULT_VOICE_MAP: dict[str, tuple[str, ...]] = {
    # OpenAI name -> our candidates, first one the model has wins (Orpheus names, then Spark genders)
    "alloy": ("tara", "female"),
    "ash": ("leo", "male"),
    "ballad": ("dan", "male"),
    "coral": ("leah", "female"),
    "echo": ("zac", "male"),
    "fable": ("jess", "female"),
    "nova": ("mia", "female"),
    "onyx": ("leo", "male"),
    "sage": ("zoe", "female"),
    "shimmer": ("leah", "female"),
    "verse": ("dan", "male"),
    "marin": ("tara", "female"),
    "cedar": ("zac", "male"),
}
"""Voices not in the model fall back to its default voice, so every OpenAI name always speaks."""

_CREATED = int(time.time())
_SAMPLING = {"temperature", "top_k", "top_p", "repetition_penalty", "max_tokens", "seed"}


def check_model(model: str, settings: Settings) -> None:
    if model not in OPENAI_MODELS and model != settings.model_name:
        raise NotFoundError(f"model '{model}' does not exist; use {settings.model_name} or one of {', '.join(OPENAI_MODELS)}", param="model")


def resolve_voice(name: str, engine: TTSEngine, settings: Settings) -> str:
    """Our voice for ``name``: our own names first, then the configured and default OpenAI maps."""
    ours = engine.list_voices()
    if name in ours:
        return name
    if name in settings.openai_voice_map:
        return settings.openai_voice_map[name]
    if name in DEFAULT_VOICE_MAP:
        return next((v for v in DEFAULT_VOICE_MAP[name] if v in ours), engine.default_voice)
    raise NotFoundError(f"voice '{name}' not found; see GET /v1/audio/voices", param="voice")


def model_ids(settings: Settings) -> list[str]:
    """This server's model id first, then the OpenAI aliases it accepts."""
    return [settings.model_name, *(m for m in OPENAI_MODELS if m != settings.model_name)]


def list_models(settings: Settings) -> ModelList:
    return ModelList(data=[ModelCard(id=i, created=_CREATED) for i in model_ids(settings)])


def get_model(model_id: str, settings: Settings) -> ModelCard:
    check_model(model_id, settings)
    return ModelCard(id=model_id, created=_CREATED)


def list_audio_models(settings: Settings) -> AudioModelList:
    return AudioModelList(models=[AudioModel(id=i) for i in model_ids(settings)])


def list_voices(engine: TTSEngine) -> VoiceList:
    return VoiceList(voices=[VoiceInfo(id=v, name=v) for v in engine.list_voices()])


async def _count_tokens(engine: TTSEngine, text: str) -> int:
    return int(await run_in_threadpool(engine.count_tokens, text))


def output_rate(body: OpenAISpeechRequest) -> int | None:
    """The rate to deliver: ``sample_rate`` if asked, OpenAI's 24 kHz for pcm, else the model's."""
    return body.sample_rate or (OPENAI_PCM_RATE if body.response_format == "pcm" else None)


async def create_speech(request: Request, body: OpenAISpeechRequest, engine: TTSEngine, settings: Settings) -> Response:
    check_model(body.model, settings)
    text = check_text(body.input, settings, param="input")
    voice = resolve_voice(body.voice_name, engine, settings)
    pitch, tempo = check_pitch(engine, body.pitch), body.speed
    fields = SamplingFields.model_validate(body.model_dump(include=set(SamplingFields.model_fields)))
    kwargs = SpeakKwargs(pitch=pitch, tempo=tempo, instructions=body.instructions, sampling=fields.sampling(), split=fields.split())
    if body.stream_format == "sse":
        input_tokens = await _count_tokens(engine, text)
        source = await unless_disconnected(request, start_source(request, engine, lambda: engine.speak_stream(text, voice, **kwargs)))
        # output_tokens: the engine does not report per-request LLM tokens, so audio_seconds is the output measure
        usage = {"input_tokens": input_tokens, "output_tokens": 0, "total_tokens": input_tokens}
        return sse_response(source, body.response_format, usage, rate=output_rate(body))
    if should_route(request, stream=body.stream, text=text):
        voice_spec = {"name": voice, "pitch": pitch, "tempo": tempo, "instructions": body.instructions}
        spec = job_spec("speak", text, body.response_format, voice=voice_spec, sampling=fields.model_dump(include=_SAMPLING), split=fields.split().__dict__)
        return await run_as_job(request, spec, rate=output_rate(body))
    return await respond(
        request,
        engine,
        stream=body.stream,
        fmt=body.response_format,
        streaming=lambda: engine.speak_stream(text, voice, **kwargs),
        whole=lambda: engine.speak(text, voice, **kwargs),
        rate=output_rate(body),
    )


__all__ = ["DEFAULT_VOICE_MAP", "OPENAI_VOICES", "create_speech", "get_model", "list_audio_models", "list_models", "list_voices", "resolve_voice"]
