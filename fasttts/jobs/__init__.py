"""Asynchronous synthesis jobs: submit-and-poll, resumable per segment, on Celery or in-process.

The API lifespan calls ``service = build_job_service(settings, engine)``, then ``await
service.start()`` (runs migrations or refuses an old schema, starts the in-process runner when no
broker is configured, and the reaper/expiry loop) and ``await service.stop()`` at shutdown.
"""

from __future__ import annotations

import importlib

from fasttts.config import Settings
from fasttts.db import engine_from_settings, session_factory
from fasttts.engine.base import TTSEngine
from fasttts.jobs.inprocess import InProcessDispatcher
from fasttts.jobs.runner import JobRunner
from fasttts.jobs.service import Dispatcher, JobService, JobsUnavailableError, Progress
from fasttts.jobs.spec import OUTPUT_FORMATS, JobSpec, VoiceSpec
from fasttts.storage import store_from_settings

CELERY_DISPATCHER = "workers.dispatch:CeleryDispatcher"
"""Loaded by name only when a broker is configured: ``fasttts`` itself never imports Celery."""


def load_dispatcher(settings: Settings) -> Dispatcher:
    if not settings.broker_url:
        return InProcessDispatcher(settings.job_inprocess_concurrency)
    module, _, name = CELERY_DISPATCHER.partition(":")
    return getattr(importlib.import_module(module), name)(settings)


def build_job_service(settings: Settings, engine: TTSEngine | None, dispatcher: Dispatcher | None = None) -> JobService:
    """Wire database, object store and dispatcher from ``settings`` (nothing is contacted yet)."""
    db = session_factory(engine_from_settings(settings))
    return JobService(settings, db, store_from_settings(settings), dispatcher or load_dispatcher(settings), engine)


__all__ = [
    "JobService", "JobRunner", "JobSpec", "VoiceSpec", "Progress", "Dispatcher", "JobsUnavailableError",
    "InProcessDispatcher", "OUTPUT_FORMATS", "build_job_service", "load_dispatcher",
]
