"""Typed FastAPI dependencies: settings, engine, voice service, admission slot, API key.

Routes declare what they need (``engine: EngineDep``) and never reach into ``app.state`` by hand;
tests swap the engine by passing one to :func:`api.app.create_app`.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from api.concurrency import ConcurrencyLimiter
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


def get_limiter(request: Request) -> ConcurrencyLimiter:
    return request.app.state.limiter


async def require_api_key(request: Request) -> None:
    """With ``--api_key`` set, every API route needs ``Authorization: Bearer <key>``.
    ``hmac.compare_digest`` keeps the comparison constant-time."""
    expected: str | None = request.app.state.settings.api_key
    if not expected:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise AuthenticationError("missing or invalid API key: send the header 'Authorization: Bearer <key>'")


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[TTSEngine, Depends(get_engine)]
VoicesDep = Annotated[VoiceService, Depends(get_voices)]
LimiterDep = Annotated[ConcurrencyLimiter, Depends(get_limiter)]
APIKey = Depends(require_api_key)
