"""Voice management: ``/v1/audio/voices`` — create (clone an upload, or freeze a created voice),
list, fetch, fetch reference audio, delete. Stored voices survive restarts (see fasttts.voices)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Path, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel

from api.deps import APIKey, EngineDep, SettingsDep, VoicesDep
from api.forms import CappedFormRoute
from api.openai.protocol import VoiceList
from api.openai.serving import list_voices
from api.reference import check_audio, read_latent_upload, read_upload, resolve_reference
from api.schemas import Level, Seed
from fasttts.errors import InvalidRequestError, NotFoundError, UnsupportedFeatureError
from fasttts.params import Gender, VoiceParams
from fasttts.voices import VoiceInfo

router = APIRouter(prefix="/v1/audio/voices", dependencies=[APIKey], tags=["voices"], route_class=CappedFormRoute)

NamePath = Annotated[str, Path(min_length=1, max_length=128, description="Voice name.")]


class VoiceOut(BaseModel):
    id: str
    name: str
    kind: Literal["builtin", "clone", "frozen", "role"]
    reference_text: str | None = None
    has_audio: bool = False
    created_at: dt.datetime | None = None


class Deleted(BaseModel):
    id: str
    deleted: bool = True


def _out(info: VoiceInfo) -> VoiceOut:
    return VoiceOut(id=info.name, name=info.name, kind=info.kind, reference_text=info.reference_text, has_audio=info.has_audio, created_at=info.created_at)


@router.post(
    "", response_model=VoiceOut, status_code=201, summary="Create a stored voice: clone reference audio, or freeze a created voice (gender/pitch/speed)"
)
async def create_voice(
    engine: EngineDep,
    settings: SettingsDep,
    voices: VoicesDep,
    name: Annotated[str, Form(min_length=1, max_length=128, description="New voice name (no '<', '>', ',', '/' or '..').", examples=["alice"])],
    reference_audio_file: Annotated[UploadFile | None, File(description="Reference audio to clone.")] = None,
    reference_audio: Annotated[str | None, Form(description="Reference audio as an http(s) URL or base64.")] = None,
    reference_text: Annotated[str | None, Form(max_length=2000, description="Transcript of the reference audio.")] = None,
    gender: Annotated[Gender | None, Form(description="Freeze a created voice of this gender instead of cloning.")] = None,
    pitch: Annotated[Level | None, Form()] = None,
    speed: Annotated[Level | None, Form()] = None,
    seed: Annotated[Seed, Form()] = None,
    latent_file: Annotated[UploadFile | None, File(description="MegaTTS3: the reference's .npy latent (the release has no encoder).")] = None,
) -> VoiceOut:
    upload = reference_audio_file if reference_audio_file is not None and reference_audio_file.filename else None
    param = "reference_audio_file" if upload is not None else "reference_audio"
    if (upload is not None or reference_audio) and not engine.capabilities.clone:  # before reading or fetching anything
        raise UnsupportedFeatureError(f"{param}: the {engine.model_type} model cannot clone voices", param=param)
    if upload is not None:
        audio = await read_upload(upload, settings)
    elif reference_audio:
        audio = await resolve_reference(reference_audio, settings)
    elif gender is not None:
        return _out(await voices.freeze(name, VoiceParams(gender=gender, pitch=pitch, speed=speed), seed))
    else:
        raise InvalidRequestError(
            "reference_audio: upload reference_audio_file, give reference_audio, or give gender to freeze a created voice", param="reference_audio"
        )
    await check_audio(audio, settings, engine.sample_rate, param=param)
    latent = await read_latent_upload(latent_file, engine, settings)
    return _out(await voices.create(name, audio, reference_text, latent=latent))


@router.get("", response_model=VoiceList, summary="List every voice a request may name")
async def get_voices(engine: EngineDep) -> VoiceList:
    return list_voices(engine)


@router.get("/{name}", response_model=VoiceOut, summary="One voice: built-in, or stored with its kind and transcript")
async def get_voice(name: NamePath, engine: EngineDep, voices: VoicesDep) -> VoiceOut:
    try:
        return _out(await voices.get(name))
    except NotFoundError:
        if name in engine.list_voices():
            return VoiceOut(id=name, name=name, kind="builtin")
        raise NotFoundError(f"voice '{name}' not found", param="voice") from None


@router.get(
    "/{name}/audio",
    response_class=Response,
    summary="The stored reference audio of a cloned voice",
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def get_voice_audio(name: NamePath, voices: VoicesDep) -> Response:
    data = await voices.reference_audio(name)
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)  # names may hold quotes or non-ASCII: keep the header valid
    return Response(data, media_type="application/octet-stream", headers={"Content-Disposition": f'attachment; filename="{safe}-reference"'})


@router.delete("/{name}", response_model=Deleted, summary="Delete a stored voice")
async def delete_voice(name: NamePath, voices: VoicesDep) -> Deleted:
    await voices.delete(name)
    return Deleted(id=name)
