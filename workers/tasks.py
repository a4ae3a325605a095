"""Celery tasks: thin wrappers over :mod:`fasttts.jobs`; all state lives in the database."""

from __future__ import annotations

from celery import Task

from fasttts.errors import NotReadyError
from workers.app import app
from workers.runtime import get_runtime


@app.task(name="fasttts.run_job", bind=True, max_retries=None)  # type: ignore[untyped-decorator]  # Celery ships no type hints
def run_job(self: Task, job_id: str) -> None:
    """Work on a job until nothing is left to claim; an outage retries later instead of failing."""
    runtime = get_runtime()
    try:
        runtime.run(runtime.runner.run_job(job_id))
    except NotReadyError as e:
        raise self.retry(exc=e, countdown=min(60, 2 ** min(self.request.retries, 6))) from e
