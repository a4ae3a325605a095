"""Celery tasks: thin wrappers over :mod:`fasttts.jobs`; all state lives in the database."""

from __future__ import annotations

from celery import Task
from celery.signals import worker_process_init

from fasttts.errors import NotReadyError
from workers.app import app, settings
from workers.runtime import get_runtime


@worker_process_init.connect
def _load_engine(**_: object) -> None:
    """Load the engine (and start the reaper) as soon as a worker process starts, not on its first
    task: a fresh worker must reap what a dead one abandoned even if no message reaches it."""
    get_runtime(settings)


@app.task(name="fasttts.run_job", bind=True, max_retries=None)
def run_job(self: Task, job_id: str) -> None:
    """Work on a job until nothing is left to claim; an outage retries later instead of failing."""
    runtime = get_runtime(settings)
    try:
        runtime.run(runtime.runner.run_job(job_id))
    except NotReadyError as e:
        raise self.retry(exc=e, countdown=min(60, 2 ** min(self.request.retries, 6))) from e


@app.task(name="fasttts.reap")
def reap() -> None:
    from fasttts.jobs import build_job_service
    from workers.dispatch import CeleryDispatcher

    build_job_service(settings, None, CeleryDispatcher(settings)).reap()


@app.task(name="fasttts.expire")
def expire() -> None:
    from fasttts.jobs import build_job_service
    from workers.dispatch import CeleryDispatcher

    build_job_service(settings, None, CeleryDispatcher(settings)).expire()
