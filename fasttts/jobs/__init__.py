"""Asynchronous synthesis jobs: submit-and-poll, resumable per segment, on Celery or in-process.

:func:`fasttts.services.open_services` calls ``service = build_job_service(settings, engine,
dispatcher)``, then ``await service.start()`` (runs migrations or refuses an old schema, starts the
in-process runner when no broker is configured, and in the API the reaper/expiry loop) and
``await service.stop()`` at shutdown.
"""

from __future__ import annotations

from fasttts.config import Settings
from fasttts.db import engine_from_settings, session_factory
from fasttts.engine.base import TTSEngine
from fasttts.jobs.inprocess import InProcessDispatcher
from fasttts.jobs.plan import pin_job_voices
from fasttts.jobs.runner import JobRunner
from fasttts.jobs.service import Dispatcher, JobService, JobsUnavailableError, Progress
from fasttts.jobs.spec import JobSpec, VoiceSpec
from fasttts.storage import store_from_settings


def build_job_service(settings: Settings, engine: TTSEngine | None, dispatcher: Dispatcher | None = None) -> JobService:
    """Wire database, object store and dispatcher from ``settings`` (nothing is contacted yet).

    With a broker configured the caller passes the queue's dispatcher (``workers.dispatch.
    CeleryDispatcher``; the library never imports Celery); without one, jobs run in-process.
    """
    if dispatcher is None:
        if settings.broker_url:
            raise ValueError("a broker is configured: pass its dispatcher (workers.dispatch.CeleryDispatcher)")
        dispatcher = InProcessDispatcher(settings.job_inprocess_concurrency)
    db = session_factory(engine_from_settings(settings))
    return JobService(settings, db, store_from_settings(settings), dispatcher, engine)


__all__ = [
    "Dispatcher",
    "InProcessDispatcher",
    "JobRunner",
    "JobService",
    "JobSpec",
    "JobsUnavailableError",
    "Progress",
    "VoiceSpec",
    "build_job_service",
    "pin_job_voices",
]
