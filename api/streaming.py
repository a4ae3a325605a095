"""Engine audio chunks → an HTTP response: a complete file, chunked bytes, or SSE events.

Every synthesis response goes through :class:`AudioSource`, which holds one concurrency slot,
pulls the first chunk *before* the response starts (so an unknown voice or a bad reference is a
clean 4xx, not a broken stream), records time-to-first-audio and audio seconds, and always closes
the engine's generator — on a client disconnect Starlette cancels the body task, the cancellation
lands inside the engine's ``await`` and its request is aborted at once.

An error after the first byte cannot change the status any more, so it must be *visible*: SSE
sends an ``error`` event; chunked audio re-raises, which makes the server cut the connection
without the terminating chunk, so clients see a truncated transfer rather than a short file that
looks complete.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import numpy as np
from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.concurrency import Slot
from api.errors import openai_error_body, status_of
from fasttts.audio.encode import CONTENT_TYPES, AudioEncoder
from fasttts.errors import FastTTSError

logger = logging.getLogger("fasttts.api")


class AudioSource:
    """One admitted synthesis request's audio chunks (see the module docstring)."""

    def __init__(self, request: Request, chunks: AsyncGenerator[np.ndarray, None], sample_rate: int, slot: Slot) -> None:
        self._chunks = chunks
        self._slot = slot
        self._first: np.ndarray | None = None
        self._metrics = request.app.state.metrics
        self._route = getattr(request.scope.get("route"), "path", request.url.path)
        self._started = request.scope.get("state", {}).get("start_time", time.perf_counter())
        self.sample_rate = sample_rate
        self.samples = 0

    async def start(self) -> AudioSource:
        try:
            async for chunk in self._chunks:
                if len(chunk):
                    self._first = chunk
                    self._metrics.first_audio.labels(self._route).observe(time.perf_counter() - self._started)
                    break
        except BaseException:
            await self.close()
            raise
        return self

    async def __aiter__(self) -> AsyncIterator[np.ndarray]:
        try:
            if self._first is not None:
                first, self._first = self._first, None
                self._count(first)
                yield first
            async for chunk in self._chunks:
                self._count(chunk)
                yield chunk
        finally:
            await self.close()

    def _count(self, chunk: np.ndarray) -> None:
        self.samples += len(chunk)
        self._metrics.audio_seconds.labels(self._route).inc(len(chunk) / self.sample_rate)

    async def close(self) -> None:
        try:
            await self._chunks.aclose()
        finally:
            self._slot.release()

    @property
    def seconds(self) -> float:
        return self.samples / self.sample_rate


def _headers(encoder: AudioEncoder, filename: str) -> dict[str, str]:
    """``X-Sample-Rate`` is the rate a decoder will see (opus and aac are encoded at 48 kHz);
    for ``pcm`` it is the only way a client can know it."""
    return {"Content-Disposition": f'attachment; filename="{filename}.{encoder.format}"', "X-Sample-Rate": str(encoder.output_rate)}


def _encode_whole(encoder: AudioEncoder, audio: np.ndarray) -> bytes:
    return encoder.encode(audio) + encoder.finish()


async def file_response(source: AudioSource, fmt: str, *, filename: str = "speech", rate: int | None = None) -> Response:
    """The whole audio encoded as one file (Content-Length set by the Response), at ``rate`` if given."""
    encoder = AudioEncoder(fmt, source.sample_rate, streaming=False, rate=rate)
    chunks = [c async for c in source]
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    data = await run_in_threadpool(_encode_whole, encoder, audio)
    return Response(data, media_type=CONTENT_TYPES[fmt], headers=_headers(encoder, filename))


async def _encoded(source: AudioSource, encoder: AudioEncoder) -> AsyncIterator[bytes]:
    async for chunk in source:
        data = await run_in_threadpool(encoder.encode, chunk)
        if data:
            yield data
    tail = await run_in_threadpool(encoder.finish)
    if tail:
        yield tail


def chunked_response(source: AudioSource, fmt: str, *, filename: str = "speech", rate: int | None = None) -> StreamingResponse:
    """Audio bytes as they are produced (chunked transfer, no Content-Length), at ``rate`` if given."""

    encoder = AudioEncoder(fmt, source.sample_rate, streaming=True, rate=rate)

    async def body() -> AsyncIterator[bytes]:
        try:
            async for data in _encoded(source, encoder):
                yield data
        except Exception:
            logger.exception("synthesis failed after streaming began; aborting the response body")
            raise

    return StreamingResponse(body(), media_type=CONTENT_TYPES[fmt], headers=_headers(encoder, filename))


def _sse(event: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(event)}\n\n".encode()


def sse_response(source: AudioSource, fmt: str, usage: dict[str, Any], *, rate: int | None = None) -> StreamingResponse:
    """OpenAI's speech SSE: ``speech.audio.delta`` events with base64 audio of ``fmt`` (at ``rate``
    if given), then ``speech.audio.done`` with usage; an ``error`` event if generation fails midway."""

    encoder = AudioEncoder(fmt, source.sample_rate, streaming=True, rate=rate)

    async def events() -> AsyncIterator[bytes]:
        try:
            async for data in _encoded(source, encoder):
                yield _sse({"type": "speech.audio.delta", "audio": base64.b64encode(data).decode()})
        except Exception as exc:
            logger.exception("synthesis failed during an SSE stream")
            message = exc.message if isinstance(exc, FastTTSError) else "internal error during synthesis"
            _, type_, code = status_of(exc)
            yield _sse({"type": "error", **openai_error_body(message, type_, getattr(exc, "param", None), code)})
            return
        yield _sse({"type": "speech.audio.done", "usage": {**usage, "audio_seconds": round(source.seconds, 3)}})

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Sample-Rate": str(encoder.output_rate)})
