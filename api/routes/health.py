"""Operations: ``/health`` (the process answers), ``/ready`` (the model is loaded and serving, and
the database, object store and broker answer: 503 naming each one lost), ``/metrics`` (Prometheus
text format)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from api.deps import APIKey
from fasttts.backends.base import LLMBackend
from fasttts.jobs import JobService

router = APIRouter(tags=["operations"])

READY_CHECK_TIMEOUT_S = 5.0
"""How long /ready waits for the dependency checks (a probe's connect timeouts are about 3 s)."""


@router.get("/health", summary="Liveness: the server process answers (no auth)")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/ready",
    summary="Readiness: the model is loaded and the database, storage and broker answer (503 naming what is lost; no auth)",
    responses={503: {"description": "not ready"}},
)
async def ready(request: Request) -> JSONResponse:
    state = request.app.state
    engine = getattr(state, "engine", None)
    if state.load_error is not None:
        return JSONResponse({"status": "failed", "error": state.load_error}, status_code=503)
    if not state.ready or engine is None:
        return JSONResponse({"status": "loading"}, status_code=503, headers={"Retry-After": "5"})
    if state.jobs is not None and (lost := await _lost_dependencies(state.jobs)):
        return JSONResponse({"status": "unavailable", "lost": lost}, status_code=503, headers={"Retry-After": str(state.backoff.failed())})
    backend = getattr(engine, "backend", None)  # the engine's LLM backend, for model families that have one
    weights = backend.weight_format if isinstance(backend, LLMBackend) else None
    return JSONResponse(
        {
            "status": "ready",
            "model_type": engine.model_type,
            "model": state.settings.model_name,
            "sample_rate": engine.sample_rate,
            "active": engine.num_active,
            "llm_weights": weights,
        }
    )


async def _lost_dependencies(jobs: JobService) -> dict[str, str]:
    """Dependency name → why it cannot be used; one that does not answer in time counts as lost."""
    try:
        return await asyncio.wait_for(asyncio.to_thread(jobs.unavailable), READY_CHECK_TIMEOUT_S)
    except asyncio.TimeoutError:
        return {"dependencies": f"no answer from the database, storage and broker checks within {READY_CHECK_TIMEOUT_S:g} s"}


@router.get("/metrics", dependencies=[APIKey], response_class=Response, summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
