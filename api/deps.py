"""Typed FastAPI dependencies: settings, engine (503 until it is ready), voice service, API key.

Routes declare these (``engine: EngineDep``) instead of reading ``app.state`` themselves; the
admission limiter, metrics and job service are reached through ``request.app.state`` where they
are used (``api/synthesis.py``, ``api/streaming.py``, ``api/job_routing.py``, the job and health
routes). Tests serve their own engine by passing it to :func:`api.app.create_app`.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from api.errors import AuthenticationError
from fasttts.config import Settings
from fasttts.engine.base import TTSEngine
from fasttts.errors import NotReadyError
from fasttts.voices import VoiceService


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_engine(request: Request) -> TTSEngine:
    """The ready engine, its stored voices first brought up to date with the database (voices
    another API replica created, changed or deleted; :meth:`VoiceService.refresh`)."""
    engine: TTSEngine | None = getattr(request.app.state, "engine", None)
    if engine is None or not getattr(request.app.state, "ready", False):
        raise NotReadyError("the model is still loading; retry shortly")
    await request.app.state.voices.refresh(tolerate_outage=True)
    return engine


def get_voices(request: Request, engine: Annotated[TTSEngine, Depends(get_engine)]) -> VoiceService:
    return request.app.state.voices


LIST_ROUTES = frozenset({"/v1/models", "/v1/audio/models", "/v1/audio/voices", "/audio_roles", "/v1/audio_roles"})
"""Read-only list routes that ``--open_list_routes`` leaves open (GET only): Open WebUI calls
them without an Authorization header, and with the key required its voice list falls back to
OpenAI's names."""


def _open_list_route(request: Request, settings: Settings) -> bool:
    route = getattr(request.scope.get("route"), "path", None)
    return settings.open_list_routes and request.method == "GET" and route in LIST_ROUTES


async def require_api_key(request: Request) -> None:
    """With ``--api_key`` set, every API route needs ``Authorization: Bearer <key>`` (but the list
    routes, with ``--open_list_routes``). ``hmac.compare_digest`` keeps the comparison constant-time."""
    settings: Settings = request.app.state.settings
    expected = settings.api_key
    if not expected or _open_list_route(request, settings):
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise AuthenticationError("missing or invalid API key: send the header 'Authorization: Bearer <key>'")


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[TTSEngine, Depends(get_engine)]
VoicesDep = Annotated[VoiceService, Depends(get_voices)]
APIKey = Depends(require_api_key)
