"""``create_app``: the FastAPI application, its lifespan and its routers.

The model loads in a background task started by the lifespan, so ``/health`` answers at once and
``/ready`` says 503 until the engine is serving (then 200); synthesis routes answer 503 with
``Retry-After`` meanwhile. A load failure is logged and reported by ``/ready``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from api.concurrency import ConcurrencyLimiter
from api.errors import install_error_handlers
from api.metrics import Metrics
from api.middleware import BodyLimitMiddleware, RequestContextMiddleware
from api.routes import health, jobs, openai, speech, voices
from fasttts.config import Settings
from fasttts.engine.base import TTSEngine
from fasttts.services import open_services
from workers.dispatch import queue_dispatcher

logger = logging.getLogger("fasttts.api")

STATIC_DIR = Path(__file__).parent / "static"

DESCRIPTION = """
Text to speech with Spark-TTS, Orpheus and Piper.

* **Native API** (server guide): `POST /clone_voice`, `POST /speak`, `POST /multi_speak`, `GET /audio_roles` — also under `/v1`.
* **OpenAI API**: `POST /v1/audio/speech`, `GET /v1/models[/{id}]`, `GET /v1/audio/voices`, `GET /v1/audio/models` (Open WebUI).
* **Voices**: `POST/GET/DELETE /v1/audio/voices[/{name}]` — stored durably, reloaded on restart.
* **Auth**: with `--api_key`, send `Authorization: Bearer <KEY>` (everything except `/health`, `/ready`, `/docs` and the web page; with `--open_list_routes`, the read-only lists too).
"""


async def _load(app: FastAPI, engine: TTSEngine | None) -> None:
    """Build the services (:func:`fasttts.services.open_services`); mark the app ready."""
    settings: Settings = app.state.settings
    try:
        services = await open_services(settings, queue_dispatcher(settings), engine=engine, sync_voices=True, maintain=True)
        app.state.services = services
        app.state.engine, app.state.voices, app.state.jobs = services.engine, services.voices, services.jobs
        app.state.ready = True
        logger.info("model ready: %s at %d Hz, voices: %s", services.engine.model_type, services.engine.sample_rate, ", ".join(services.engine.list_voices()))
    except Exception as exc:
        app.state.load_error = f"{type(exc).__name__}: {exc}"
        logger.critical("the model failed to load: %s", app.state.load_error, exc_info=exc)
        raise


def _document_schemas(app: FastAPI, models: tuple[type[BaseModel], ...]) -> None:
    """Add ``models`` (and the models they nest) to the OpenAPI components, where the routes'
    hand-written request bodies point with ``$ref``; built once, with the rest of the document."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()  # FastAPI keeps it as app.openapi_schema: the additions below stay
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for model in models:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(schema.pop("$defs", {}))
            schemas[model.__name__] = schema
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings | None = None, engine: TTSEngine | None = None) -> FastAPI:
    """The app for ``settings``; pass ``engine`` to serve an already built engine (tests, embedding).
    An engine passed in is started but not shut down by the app (its owner does that)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.loading = asyncio.create_task(_load(app, engine))
        try:
            yield
        finally:
            app.state.ready = False
            if not app.state.loading.done():
                app.state.loading.cancel()
            await asyncio.gather(app.state.loading, return_exceptions=True)
            if app.state.services is not None:
                await app.state.services.stop()

    app = FastAPI(title="FastTTS", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.services = None
    app.state.engine = None
    app.state.voices = None
    app.state.jobs = None
    app.state.route_jobs = settings.broker_url is not None  # long sync requests go to workers
    app.state.ready = False
    app.state.load_error = None
    app.state.limiter = ConcurrencyLimiter(settings.max_concurrency)
    app.state.metrics = Metrics(lambda: app.state.engine, lambda: app.state.limiter.in_flight)

    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(speech.router)
    app.include_router(speech.router, prefix="/v1")
    app.include_router(openai.router)
    app.include_router(voices.router)
    app.include_router(jobs.router)
    _document_schemas(app, jobs.SCHEMAS)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    app.add_middleware(BodyLimitMiddleware, max_upload_bytes=settings.max_upload_bytes, max_json_bytes=settings.max_json_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["X-Request-ID", "X-Sample-Rate", "Content-Disposition"],
        )
    app.add_middleware(RequestContextMiddleware, metrics=app.state.metrics, backoff=app.state.backoff)
    return app
