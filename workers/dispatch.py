"""Enqueue jobs on the Celery broker: the dispatcher that :func:`fasttts.services.open_services`
gets from the API and the worker runtime when a broker is configured."""

from __future__ import annotations

from fasttts.config import Settings
from fasttts.engine.base import TTSEngine
from fasttts.jobs import JobService, JobsUnavailableError


def queue_dispatcher(settings: Settings) -> CeleryDispatcher | None:
    """The Celery dispatcher when a broker is configured; None runs jobs in-process."""
    return CeleryDispatcher(settings) if settings.broker_url else None


class CeleryDispatcher:
    def __init__(self, settings: Settings) -> None:
        from workers.app import make_celery

        self.settings = settings
        self.app = make_celery(settings)

    def check(self) -> None:
        try:
            with self.app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=3)
        except Exception as e:
            raise JobsUnavailableError(f"job broker unavailable: {type(e).__name__}") from e

    def enqueue(self, job_id: str) -> None:
        try:
            self.app.send_task("fasttts.run_job", args=[job_id], queue=self.settings.job_queue, retry=False)
        except Exception as e:
            raise JobsUnavailableError(f"job broker unavailable: {type(e).__name__}") from e

    async def start(self, service: JobService, engine: TTSEngine | None) -> None:
        """Nothing runs here: workers pick the jobs up."""

    async def stop(self) -> None:
        """Close the Celery app: its broker connection pools and producer pool."""
        self.app.close()
