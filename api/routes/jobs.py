"""``/v1/jobs``: submit-and-poll synthesis (speak, clone, multi_speak, audiobook).

Thin: requests become a :class:`~fasttts.jobs.JobSpec` and go to ``app.state.jobs`` (a
:class:`~fasttts.jobs.JobService`, built by :func:`fasttts.services.open_services`); its
blocking calls run in a thread. Outages (database, broker, S3) arrive as
``NotReadyError`` and leave as 503 with ``Retry-After`` through the app's error handlers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import FileResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile

from api.deps import APIKey, SettingsDep
from api.forms import CappedFormRoute
from api.reference import check_audio, read_upload
from fasttts.db import Job, JobStatus
from fasttts.errors import InvalidRequestError, NotFoundError, NotReadyError
from fasttts.jobs import JobService, JobSpec, VoiceSpec
from fasttts.params import TEMPO_LIMIT, Gender, Level, ResponseFormat
from fasttts.storage import LocalStore

router = APIRouter(prefix="/v1/jobs", dependencies=[APIKey], tags=["jobs"], route_class=CappedFormRoute)

REFERENCE_CHECK_RATE = 16_000
"""Rate the submit-time decode check resamples to; only whether the audio decodes matters (the API
process may have no engine when workers run the jobs)."""

MAX_OFFSET = 2**31 - 1
"""Largest list offset: beyond any job table, and within every database's integer (SQLite raised
an overflow, a 500, for offsets past 64 bits)."""

JobIdPath = Annotated[str, Path(min_length=1, max_length=64, description="Job id.")]


class VoiceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, description="Stored or built-in voice name.")
    gender: Gender | None = None
    pitch: Level | None = None
    speed: Level | None = Field(None, description="A speed level (very_low … very_high).")
    tempo: Annotated[float | None, TEMPO_LIMIT.interval] = Field(None, description="Speed as a factor, like OpenAI's speed (2.0: twice as fast).")
    instructions: str | None = None
    reference_text: str | None = Field(None, description="Transcript of the uploaded reference audio (clone jobs).")


class JobCreate(BaseModel):
    """A job. JSON for ``speak``/``multi_speak`` (and audiobooks given as ``text``); multipart with
    a ``request`` field holding this JSON plus a ``file`` (audiobook: .txt, .md or .epub) or
    ``reference_audio`` (clone) upload. Unknown fields are refused (422 naming them): a field the
    service does not read would otherwise be dropped silently (an OpenAI-style ``input`` would
    leave the job without text)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["speak", "clone", "multi_speak", "audiobook"]
    text: str = ""
    id: str | None = Field(None, description="Client-chosen job id; resubmitting the same id returns the same job.")
    voice: VoiceIn = Field(default_factory=VoiceIn)
    output_format: ResponseFormat = "mp3"
    sampling: dict[str, Any] = Field(default_factory=dict, description="temperature, top_k, top_p, repetition_penalty, max_tokens, seed.")
    split: dict[str, Any] = Field(default_factory=dict, description="length_threshold, window_size (LLM tokens).")
    default_voice: str | None = Field(None, description="multi_speak: voice of untagged text.")
    chapter_voices: dict[str, str] = Field(default_factory=dict, description="audiobook: chapter number (1-based) → voice name.")
    webhook_url: str | None = Field(None, description="POSTed (HMAC-signed) when the job finishes.")


class ProgressOut(BaseModel):
    segments_done: int
    segments_total: int
    percent: float
    audio_seconds: float
    eta_s: float | None


class JobOut(BaseModel):
    id: str
    object: Literal["job"] = "job"
    kind: str
    status: JobStatus
    output_format: str
    progress: ProgressOut
    error: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    expires_at: dt.datetime | None
    chapters: list[str]
    url: str
    results: dict[str, str] = Field(description="Artifact name → download URL (presigned for S3).")


class JobList(BaseModel):
    object: Literal["list"] = "list"
    data: list[JobOut]
    total: int
    limit: int
    offset: int


def _service(request: Request) -> JobService:
    service: JobService | None = getattr(request.app.state, "jobs", None)
    if service is None:
        raise NotReadyError("the job service is not running yet")
    return service


def _out(request: Request, service: JobService, job: Job) -> JobOut:
    base = str(request.base_url).rstrip("/")
    view = service.describe(job)
    results: dict[str, str] = {}
    for name, key in (job.result or {}).items():
        results[name] = service.store.url(key, filename=f"{job.id}-{name.replace('/', '-')}") or f"{base}/v1/jobs/{job.id}/result/{name}"
    return JobOut(**(view | {"url": f"{base}/v1/jobs/{job.id}", "results": results}))


def _invalid(error: ValidationError, param: str) -> InvalidRequestError:
    """One 422 naming what is wrong: every unknown field at once, else the first bad value."""
    unknown = [".".join(map(str, e["loc"])) for e in error.errors() if e["type"] == "extra_forbidden"]
    if unknown:
        return InvalidRequestError(f"invalid job: unknown field(s) {', '.join(unknown)}", param=unknown[0])
    first = error.errors()[0]
    where = ".".join(map(str, first["loc"])) or param
    return InvalidRequestError(f"invalid job: {first['msg']} at {where}", param=where)


async def _parse(request: Request, settings: Any) -> tuple[JobCreate, dict[str, Any]]:
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        try:
            return JobCreate.model_validate_json(await request.body()), {}
        except ValidationError as e:
            raise _invalid(e, "body") from None
    async with request.form() as form:  # closes the uploads' temporary files on the way out
        try:
            body = JobCreate.model_validate(json.loads(str(form.get("request") or "{}")))
        except json.JSONDecodeError as e:
            raise InvalidRequestError(f"invalid 'request' form field: {e}", param="request") from None
        except ValidationError as e:
            raise _invalid(e, "request") from None
        extra: dict[str, Any] = {}
        if isinstance(book := form.get("file"), UploadFile):
            extra |= {"book": await read_upload(book, settings, param="file"), "filename": book.filename, "content_type": book.content_type}
        if isinstance(ref := form.get("reference_audio"), UploadFile):
            extra["reference_audio"] = await read_upload(ref, settings, param="reference_audio")
    if "reference_audio" in extra:  # decoded once here so bad audio is a 4xx at submit, never a failure (or worse) in a worker
        await check_audio(extra["reference_audio"], settings, REFERENCE_CHECK_RATE, param="reference_audio")
    return body, extra


SCHEMAS = (JobCreate,)
"""Models the job routes parse by hand (JSON or multipart), so FastAPI does not list them in the
OpenAPI components itself; :func:`api.app.create_app` adds them, and the ``$ref`` above resolves."""


@router.post(
    "",
    status_code=202,
    response_model=JobOut,
    summary="Submit a job",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/JobCreate"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "request": {"type": "string", "description": "JobCreate as JSON"},
                            "file": {"type": "string", "format": "binary"},
                            "reference_audio": {"type": "string", "format": "binary"},
                        },
                    }
                },
            }
        }
    },
)
async def create_job(
    request: Request, response: Response, settings: SettingsDep, idempotency_key: Annotated[str | None, Header(max_length=255)] = None
) -> JobOut:
    service = _service(request)
    body, extra = await _parse(request, settings)
    spec = JobSpec(
        kind=body.kind,
        text=body.text,
        voice=VoiceSpec.from_dict(body.voice.model_dump()),
        output_format=body.output_format,
        sampling=body.sampling,
        split=body.split,
        default_voice=body.default_voice,
        chapter_voices=body.chapter_voices,
    )
    if (voices := getattr(request.app.state, "voices", None)) is not None:
        await voices.refresh(tolerate_outage=True)  # voices another replica created, changed or deleted
    job, created = await service.submit(spec, job_id=body.id, idempotency_key=idempotency_key, webhook_url=body.webhook_url, **extra)
    out = _out(request, service, job)
    response.headers["Location"] = out.url
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return out


@router.get("", response_model=JobList, summary="List jobs")
async def list_jobs(
    request: Request,
    status: JobStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> JobList:
    service = _service(request)
    jobs, total = await asyncio.to_thread(service.list, status=status, limit=limit, offset=offset)
    return JobList(data=[_out(request, service, j) for j in jobs], total=total, limit=limit, offset=offset)


@router.get("/{job_id}", response_model=JobOut, summary="Job status, progress and result links")
async def get_job(request: Request, job_id: JobIdPath) -> JobOut:
    service = _service(request)
    return _out(request, service, await asyncio.to_thread(service.get, job_id))


@router.post("/{job_id}/cancel", response_model=JobOut, summary="Cancel a queued or running job")
async def cancel_job(request: Request, job_id: JobIdPath) -> JobOut:
    service = _service(request)
    await asyncio.to_thread(service.get, job_id)
    return _out(request, service, await asyncio.to_thread(service.cancel, job_id))


@router.delete("/{job_id}", status_code=204, summary="Delete a job and its stored audio")
async def delete_job(request: Request, job_id: JobIdPath) -> Response:
    await asyncio.to_thread(_service(request).delete, job_id)
    return Response(status_code=204)


@router.get("/{job_id}/result/{name:path}", summary="Download a result (local store; S3 redirects to a presigned URL)", response_class=Response)
async def get_result(request: Request, job_id: JobIdPath, name: str) -> Response:
    service = _service(request)
    job = await asyncio.to_thread(service.get, job_id)
    key = (job.result or {}).get(name)
    if key is None:
        raise NotFoundError(f"job '{job_id}' has no result '{name}'", param="name")
    if isinstance(service.store, LocalStore):
        return FileResponse(service.store.path(key), filename=f"{job_id}-{name.replace('/', '-')}")
    url = service.store.url(key)
    assert url is not None
    return RedirectResponse(url, status_code=307)
