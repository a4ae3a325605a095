"""Operations: ``/health`` (the process answers), ``/ready`` (the model is loaded and serving),
``/metrics`` (Prometheus text format)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from api.deps import APIKey
from fasttts.backends.base import LLMBackend

router = APIRouter(tags=["operations"])


@router.get("/health", summary="Liveness: the server process answers (no auth)")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", summary="Readiness: the model is loaded (503 while loading; no auth)", responses={503: {"description": "not ready"}})
async def ready(request: Request) -> JSONResponse:
    state = request.app.state
    engine = getattr(state, "engine", None)
    if state.load_error is not None:
        return JSONResponse({"status": "failed", "error": state.load_error}, status_code=503)
    if not state.ready or engine is None:
        return JSONResponse({"status": "loading"}, status_code=503, headers={"Retry-After": "5"})
    backend = getattr(engine, "backend", None)  # the engine's LLM backend, for model families that have one
    weights = backend.weight_format if isinstance(backend, LLMBackend) else None
    return JSONResponse({"status": "ready", "model_type": engine.model_type, "model": state.settings.model_name, "sample_rate": engine.sample_rate,
                         "active": engine.num_active, "llm_weights": weights})


@router.get("/metrics", dependencies=[APIKey], response_class=Response, summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
