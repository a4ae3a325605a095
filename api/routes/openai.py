"""OpenAI-compatible routes: ``POST /v1/audio/speech`` and ``GET /v1/models``.
(``/v1/audio/voices`` lives in :mod:`api.routes.voices`.)"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.deps import APIKey, EngineDep, SettingsDep
from api.openai import serving
from api.openai.protocol import ErrorResponse, ModelList, OpenAISpeechRequest

ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 404, 413, 422, 429, 503)}

router = APIRouter(prefix="/v1", dependencies=[APIKey], tags=["openai"], responses=ERRORS)


@router.post(
    "/audio/speech",
    response_class=Response,
    summary="OpenAI-compatible text to speech",
    responses={200: {"description": "Audio bytes (stream_format=audio) or text/event-stream (stream_format=sse).", "content": {"audio/mpeg": {}, "text/event-stream": {}}}},
)
async def create_speech(request: Request, body: OpenAISpeechRequest, engine: EngineDep, settings: SettingsDep) -> Response:
    return await serving.create_speech(request, body, engine, settings)


@router.get("/models", response_model=ModelList, summary="Models this server accepts")
async def list_models(settings: SettingsDep) -> ModelList:
    return serving.list_models(settings)
