"""The composition root: settings → engine, voice service, job service (storage, database,
dispatcher). The API lifespan (``api/app.py``) and the Celery worker runtime (``workers/runtime.py``)
both build their pieces here and nowhere else, so an API process and a worker process always run
the same engine, storage and database wiring from the same :class:`~fasttts.config.Settings`.

The two roles differ in two switches only:

* ``sync_voices`` (API): after the engine starts, apply ``--fix_voice`` and ``--role_dir`` (encode
  and store what is new). Workers never need it: every voice a job uses is resolved into the job
  at submit (:func:`fasttts.jobs.plan.pin_job_voices`).
* ``maintain`` (API): run the job maintenance loop (reaper + result expiry,
  :meth:`fasttts.jobs.JobService.start`). It runs in the API processes only; workers never reap.

The dispatcher is passed in because the library never imports Celery: entry points get it from
``workers.dispatch.queue_dispatcher`` (Celery with a broker, ``None`` for the in-process runner).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from fasttts.config import Settings
from fasttts.db import prepare_schema
from fasttts.engine.base import TTSEngine
from fasttts.jobs import Dispatcher, JobService, build_job_service
from fasttts.voices import VoiceService


def build_engine(settings: Settings) -> TTSEngine:
    """The engine for ``settings.model_path`` (blocking: loads weights)."""
    from fasttts.models.registry import AutoEngine

    return AutoEngine(settings)


@dataclass
class Services:
    settings: Settings
    engine: TTSEngine
    voices: VoiceService
    jobs: JobService
    owns_engine: bool
    """False when the caller passed its own engine (it shuts it down itself)."""

    async def stop(self) -> None:
        await self.jobs.stop()
        await asyncio.to_thread(self.voices.close)
        if self.owns_engine:
            await self.engine.shutdown()


async def open_services(settings: Settings, dispatcher: Dispatcher | None, *, engine: TTSEngine | None = None, sync_voices: bool, maintain: bool) -> Services:
    """Build and start everything one process serves with: the schema checked (or migrated), the
    engine loaded with every stored voice, then started, the job service started."""
    await asyncio.to_thread(prepare_schema, settings.resolved_database_url, migrate=settings.auto_migrate)
    owns_engine = engine is None
    if engine is None:
        engine = await asyncio.to_thread(build_engine, settings)
    voices = await asyncio.to_thread(VoiceService.from_settings, settings, engine)
    await voices.refresh()  # before start: --fix_voice finds its stored voices and does not remake them
    await engine.start()
    if sync_voices:
        await voices.sync()
    jobs = build_job_service(settings, engine, dispatcher)
    await jobs.start(maintain=maintain)
    return Services(settings, engine, voices, jobs, owns_engine)
