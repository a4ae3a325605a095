"""Native endpoints of the server guide (§4): ``/clone_voice``, ``/speak``, ``/multi_speak``,
``/audio_roles`` — mounted at the root and again under ``/v1``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response

from api.deps import APIKey, EngineDep, SettingsDep
from api.forms import CappedFormRoute
from api.job_routing import job_spec, run_as_job, should_route
from api.reference import check_audio, read_latent_upload, read_upload, resolve_reference
from api.schemas import (
    DiffusionSteps,
    LengthThreshold,
    Level,
    MaxTokens,
    MultiSpeakRequest,
    RepetitionPenalty,
    ResponseFormat,
    RolesResponse,
    SamplingFields,
    Seed,
    SpeakerWeight,
    SpeakRequest,
    Temperature,
    TextWeight,
    TopK,
    TopP,
    WindowSize,
)
from api.synthesis import check_pitch, check_text, respond
from fasttts.engine.base import CloneKwargs, ScriptKwargs, SpeakKwargs
from fasttts.errors import InvalidRequestError, UnsupportedFeatureError
from fasttts.params import VoiceParams

router = APIRouter(dependencies=[APIKey], tags=["speech"], route_class=CappedFormRoute)


def _sampling(fields: SamplingFields) -> dict[str, object]:
    return fields.model_dump(
        include={"temperature", "top_k", "top_p", "repetition_penalty", "max_tokens", "seed", "text_weight", "speaker_weight", "diffusion_steps"}
    )


async def _collect(chunks: AsyncIterator[np.ndarray]) -> np.ndarray:
    pieces = [c async for c in chunks]
    return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)


def _split(fields: SamplingFields) -> dict[str, object]:
    return fields.model_dump(include={"length_threshold", "window_size"})


AUDIO_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Audio in the requested format (a complete file, or chunked when stream=true).",
        "content": {"audio/mpeg": {}, "audio/wav": {}, "audio/flac": {}, "audio/ogg": {}, "audio/aac": {}, "audio/pcm": {}},
    }
}


@router.post("/clone_voice", response_class=Response, responses=AUDIO_RESPONSES, summary="Clone a voice from reference audio and speak text with it")
async def clone_voice(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    text: Annotated[str, Form(min_length=1, description="Text to synthesize.", examples=["Hello, world"])],
    reference_audio: Annotated[str | None, Form(description="Reference audio as an http(s) URL or a base64 string.")] = None,
    reference_audio_file: Annotated[UploadFile | None, File(description="Reference audio upload (WAV, MP3, FLAC, OGG...).")] = None,
    reference_text: Annotated[str | None, Form(max_length=2000, description="Transcript of the reference audio.")] = None,
    pitch: Annotated[Level | None, Form()] = None,
    speed: Annotated[Level | None, Form()] = None,
    temperature: Annotated[Temperature, Form()] = None,
    top_k: Annotated[TopK, Form()] = None,
    top_p: Annotated[TopP, Form()] = None,
    repetition_penalty: Annotated[RepetitionPenalty, Form()] = None,
    max_tokens: Annotated[MaxTokens, Form()] = None,
    length_threshold: Annotated[LengthThreshold, Form()] = 50,
    window_size: Annotated[WindowSize, Form()] = 50,
    seed: Annotated[Seed, Form()] = None,
    stream: Annotated[bool, Form()] = False,
    response_format: Annotated[ResponseFormat, Form()] = "mp3",
    latent_file: Annotated[UploadFile | None, File(description="MegaTTS3: the reference's .npy latent (the release has no encoder).")] = None,
    text_weight: Annotated[TextWeight, Form(description="MegaTTS3 text guidance (default 1.6).")] = None,
    speaker_weight: Annotated[SpeakerWeight, Form(description="MegaTTS3 speaker guidance (default 2.5).")] = None,
    diffusion_steps: Annotated[DiffusionSteps, Form(description="MegaTTS3 flow-matching steps (default 32).")] = None,
) -> Response:
    check_text(text, settings)
    if not engine.capabilities.clone:
        raise UnsupportedFeatureError(f"reference_audio: the {engine.model_type} model cannot clone voices", param="reference_audio")
    pitch = check_pitch(engine, pitch)
    fields = SamplingFields(
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        repetition_penalty=repetition_penalty,
        max_tokens=max_tokens,
        length_threshold=length_threshold,
        window_size=window_size,
        seed=seed,
        text_weight=text_weight,
        speaker_weight=speaker_weight,
        diffusion_steps=diffusion_steps,
    )
    # before the reference is read: the minimum does not depend on its bytes
    engine.check_max_tokens([VoiceParams(reference_audio=b"", reference_text=reference_text)], fields.sampling())
    if reference_audio_file is not None and reference_audio_file.filename:
        audio = await read_upload(reference_audio_file, settings)
        param = "reference_audio_file"
    elif reference_audio:
        audio = await resolve_reference(reference_audio, settings)
        param = "reference_audio"
    else:
        raise InvalidRequestError("reference_audio: give reference_audio (URL or base64) or upload reference_audio_file", param="reference_audio")
    await check_audio(audio, settings, engine.sample_rate, param=param)
    latent = await read_latent_upload(latent_file, engine, settings)
    if engine.capabilities.voice_latent:  # the reference's context is computed once, here
        state = await engine.pin_voice(VoiceParams(reference_audio=audio, reference_text=reference_text, reference_latent=latent))
        voice = VoiceParams(state=state)
        if should_route(request, stream=stream, text=text):
            return await run_as_job(
                request, job_spec("speak", text, response_format, voice={"state": state}, sampling=_sampling(fields), split=_split(fields)), filename="clone"
            )
        segments = await asyncio.to_thread(engine.segments, text, voice, fields.split())  # normalising can take a while (TTSEngine.segments)
        return await respond(
            request,
            engine,
            stream=stream,
            fmt=response_format,
            streaming=lambda: engine.synthesize_segments(segments, fields.sampling(), stream=True),
            whole=lambda: _collect(engine.synthesize_segments(segments, fields.sampling())),
            filename="clone",
        )
    if should_route(request, stream=stream, text=text):
        spec = job_spec(
            "clone",
            text,
            response_format,
            voice={"pitch": pitch, "speed": speed, "reference_text": reference_text},
            sampling=_sampling(fields),
            split=_split(fields),
        )
        return await run_as_job(request, spec, reference_audio=audio, filename="clone")
    kwargs = CloneKwargs(pitch=pitch, speed=speed, sampling=fields.sampling(), split=fields.split())
    return await respond(
        request,
        engine,
        stream=stream,
        fmt=response_format,
        streaming=lambda: engine.clone_stream(text, audio, reference_text, **kwargs),
        whole=lambda: engine.clone(text, audio, reference_text, **kwargs),
        filename="clone",
    )


@router.post("/speak", response_class=Response, responses=AUDIO_RESPONSES, summary="Speak text with a stored or built-in voice")
async def speak(request: Request, body: SpeakRequest, engine: EngineDep, settings: SettingsDep) -> Response:
    check_text(body.text, settings)
    pitch, speed = check_pitch(engine, body.pitch), body.speed
    if should_route(request, stream=body.stream, text=body.text):
        spec = job_spec(
            "speak", body.text, body.response_format, voice={"name": body.name, "pitch": pitch, "speed": speed}, sampling=_sampling(body), split=_split(body)
        )
        return await run_as_job(request, spec)
    kwargs = SpeakKwargs(pitch=pitch, speed=speed, sampling=body.sampling(), split=body.split())
    return await respond(
        request,
        engine,
        stream=body.stream,
        fmt=body.response_format,
        streaming=lambda: engine.speak_stream(body.text, body.name, **kwargs),
        whole=lambda: engine.speak(body.text, body.name, **kwargs),
    )


@router.post("/multi_speak", response_class=Response, responses=AUDIO_RESPONSES, summary="Speak a multi-speaker script ('<role:name> text ...')")
async def multi_speak(request: Request, body: MultiSpeakRequest, engine: EngineDep, settings: SettingsDep) -> Response:
    check_text(body.text, settings)
    if should_route(request, stream=body.stream, text=body.text, multi=True):
        spec = job_spec("multi_speak", body.text, body.response_format, voice={}, sampling=_sampling(body), split=_split(body))
        return await run_as_job(request, spec, filename="dialogue")
    kwargs = ScriptKwargs(sampling=body.sampling(), split=body.split())
    return await respond(
        request,
        engine,
        stream=body.stream,
        fmt=body.response_format,
        streaming=lambda: engine.multi_speak_stream(body.text, **kwargs),
        whole=lambda: engine.multi_speak(body.text, **kwargs),
        filename="dialogue",
    )


@router.get("/audio_roles", response_model=RolesResponse, summary="List the voices (roles) a request may name")
async def audio_roles(engine: EngineDep) -> RolesResponse:
    return RolesResponse(roles=engine.list_voices())
