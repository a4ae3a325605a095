"""OpenAI-compatible routes: ``POST /v1/audio/speech``, ``GET /v1/models[/{id}]`` and Open WebUI's
``GET /v1/audio/models``. (``/v1/audio/voices`` lives in :mod:`api.routes.voices`.)"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from api.deps import APIKey, EngineDep, SettingsDep
from api.openai import serving
from api.openai.protocol import AudioModelList, ErrorResponse, ModelCard, ModelList, OpenAISpeechRequest

ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorResponse} for code in (400, 401, 404, 413, 422, 429, 503)}

router = APIRouter(prefix="/v1", dependencies=[APIKey], tags=["openai"], responses=ERRORS)


@router.post(
    "/audio/speech",
    response_class=Response,
    summary="OpenAI-compatible text to speech",
    responses={
        200: {
            "description": "Audio bytes (stream_format=audio) or text/event-stream (stream_format=sse).",
            "content": {"audio/mpeg": {}, "text/event-stream": {}},
        }
    },
)
async def create_speech(request: Request, body: OpenAISpeechRequest, engine: EngineDep, settings: SettingsDep) -> Response:
    return await serving.create_speech(request, body, engine, settings)


@router.get("/models", response_model=ModelList, summary="Models this server accepts")
async def list_models(settings: SettingsDep) -> ModelList:
    return serving.list_models(settings)


@router.get("/models/{model_id}", response_model=ModelCard, summary="One model this server accepts (404 for any other)")
async def get_model(model_id: Annotated[str, Path(min_length=1, max_length=128)], settings: SettingsDep) -> ModelCard:
    return serving.get_model(model_id, settings)


@router.get("/audio/models", response_model=AudioModelList, summary="Speech models, in the shape Open WebUI reads")
async def list_audio_models(settings: SettingsDep) -> AudioModelList:
    return serving.list_audio_models(settings)
