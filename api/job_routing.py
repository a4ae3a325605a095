"""Synchronous requests that run as jobs: with a broker configured, a non-streaming request whose
text is at least ``job_route_min_chars`` long (or any multi-speaker script) is executed by the
workers instead of this process, and the request waits for the result.

This keeps long synthesis off the API process's engine while clients keep the plain synchronous
API. Streaming requests never queue. If the result takes longer than ``job_wait_timeout_s``, the
answer is 202 with the job's URL to poll; a client that goes away cancels its job.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from api.disconnect import unless_disconnected
from fasttts.audio import load_audio
from fasttts.audio.encode import CONTENT_TYPES, delivered_rate, encode_audio
from fasttts.db import FINAL_STATUSES
from fasttts.errors import GenerationError
from fasttts.jobs import JobSpec, VoiceSpec

POLL_INTERVAL_S = 0.2


def should_route(request: Request, *, stream: bool, text: str, multi: bool = False) -> bool:
    state = request.app.state
    if stream or not state.route_jobs or state.jobs is None:
        return False
    return multi or len(text) >= state.settings.job_route_min_chars


async def run_as_job(request: Request, spec: JobSpec, *, reference_audio: bytes | None = None, filename: str = "speech", rate: int | None = None) -> Response:
    """``rate``: deliver at this sample rate; jobs store audio at the model's, so the job then
    renders lossless WAV, which is resampled and encoded here. A client that leaves cancels the job."""
    return await unless_disconnected(request, _run_as_job(request, spec, reference_audio, filename, rate))


async def _run_as_job(request: Request, spec: JobSpec, reference_audio: bytes | None, filename: str, rate: int | None) -> Response:
    service = request.app.state.jobs
    fmt, model_rate = spec.output_format, request.app.state.engine.sample_rate
    if rate is not None and rate != model_rate:
        spec.output_format = "wav"
    job, _ = await service.submit(spec, reference_audio=reference_audio)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + request.app.state.settings.job_wait_timeout_s
    try:
        while job.status not in FINAL_STATUSES:
            if loop.time() > deadline:
                url = f"{str(request.base_url).rstrip('/')}/v1/jobs/{job.id}"
                return JSONResponse({"id": job.id, "status": job.status, "url": url}, status_code=202, headers={"Location": url})
            await asyncio.sleep(POLL_INTERVAL_S)
            job = await asyncio.to_thread(service.get, job.id)
    except asyncio.CancelledError:
        await asyncio.shield(asyncio.to_thread(service.cancel, job.id))
        raise
    if job.status != "succeeded":
        raise GenerationError(f"job {job.id} {job.status}: {job.error or 'no result'}")
    data = await asyncio.to_thread(service.store.get, job.result[f"audio.{spec.output_format}"])
    if spec.output_format != fmt:
        data = await asyncio.to_thread(_transcode, data, model_rate, fmt, rate)
    headers = {
        "Content-Disposition": f'attachment; filename="{filename}.{fmt}"',
        "X-Job-ID": job.id,
        "X-Sample-Rate": str(delivered_rate(fmt, rate or model_rate)),
    }
    return Response(data, media_type=CONTENT_TYPES[fmt], headers=headers)


def _transcode(wav: bytes, model_rate: int, fmt: str, rate: int | None) -> bytes:
    return encode_audio(load_audio(wav, model_rate), model_rate, fmt, rate=rate)


def job_spec(kind: str, text: str, fmt: str, *, voice: dict[str, Any], sampling: dict[str, Any], split: dict[str, Any]) -> JobSpec:
    return JobSpec(
        kind=kind,
        text=text,
        output_format=fmt,
        voice=VoiceSpec.from_dict(voice),
        sampling={k: v for k, v in sampling.items() if v is not None},
        split=split,
    )
