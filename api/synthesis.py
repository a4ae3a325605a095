"""The steps every synthesis route shares: check the request against the loaded model, take a
concurrency slot, start the engine stream and turn it into a response.

Routes stay declarative (parse → call :func:`respond`); what a model cannot do becomes a 400
naming the field *before* any audio work, from :class:`fasttts.engine.base.Capabilities`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TypeVar

import numpy as np
from fastapi import Request
from fastapi.responses import Response

from api.disconnect import unless_disconnected
from api.streaming import AudioSource, chunked_response, file_response
from fasttts.config import Settings
from fasttts.engine.base import TTSEngine
from fasttts.errors import InvalidRequestError, UnsupportedFeatureError
from fasttts.text import check_characters

NEUTRAL_LEVEL = "moderate"

L = TypeVar("L", bound=str)  # a level (a Literal) stays one through check_pitch
"""A pitch of ``moderate`` asks for no change, so any model accepts it."""


def check_text(text: str, settings: Settings, *, param: str = "text") -> str:
    check_characters(text, param)
    if not text.strip():
        raise InvalidRequestError(f"{param}: must not be empty", param=param)
    if len(text) > settings.max_input_chars:
        raise InvalidRequestError(f"{param}: longer than {settings.max_input_chars} characters ({len(text)})", param=param)
    return text


def check_pitch(engine: TTSEngine, pitch: L | None) -> L | None:
    """The pitch to pass on: ``moderate`` dropped where the model has no pitch control, any other
    level refused there. (Speed needs no check: every model meets it, see ``TTSEngine.speed_plan``.)"""
    if pitch == NEUTRAL_LEVEL and not engine.capabilities.pitch:
        return None
    if pitch is not None and not engine.capabilities.pitch:
        raise UnsupportedFeatureError(f"pitch: the {engine.model_type} model has no pitch control", param="pitch")
    return pitch


async def once(result: Awaitable[np.ndarray]) -> AsyncGenerator[np.ndarray, None]:
    """A whole-audio call seen as a one-chunk stream, so file responses share the streaming path."""
    yield await result


async def start_source(request: Request, engine: TTSEngine, make: Callable[[], AsyncGenerator[np.ndarray, None]]) -> AudioSource:
    """Admit the request (429 when full), start generation and wait for its first audio."""
    slot = request.app.state.limiter.acquire()
    try:
        chunks = make()
    except BaseException:
        slot.release()
        raise
    return await AudioSource(request, chunks, engine.sample_rate, slot).start()


async def respond(
    request: Request,
    engine: TTSEngine,
    *,
    stream: bool,
    fmt: str,
    streaming: Callable[[], AsyncGenerator[np.ndarray, None]],
    whole: Callable[[], Awaitable[np.ndarray]],
    filename: str = "speech",
    rate: int | None = None,
) -> Response:
    """``stream`` → chunked audio as produced; else one complete file with its length. ``rate``:
    the sample rate to deliver (default the model's, which native routes keep)."""
    if stream:  # once the body streams, Starlette itself stops it when the client leaves
        source = await unless_disconnected(request, start_source(request, engine, streaming))
        return chunked_response(source, fmt, filename=filename, rate=rate)

    async def complete() -> Response:
        source = await start_source(request, engine, lambda: once(whole()))
        return await file_response(source, fmt, filename=filename, rate=rate)

    return await unless_disconnected(request, complete())
