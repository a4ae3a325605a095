"""The embedded default: jobs run as asyncio tasks inside the API process (no broker).

Same :class:`JobRunner` as the Celery workers, so the embedded server and production differ only
in who calls ``run_job``. Enqueue is thread-safe (the service is called from request threads).
"""

from __future__ import annotations

import asyncio
import logging

from fasttts.engine.base import TTSEngine
from fasttts.errors import NotReadyError
from fasttts.jobs.runner import JobRunner
from fasttts.jobs.service import JobService

logger = logging.getLogger(__name__)


class InProcessDispatcher:
    def __init__(self, concurrency: int = 2) -> None:
        self.concurrency = concurrency
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[str] | None = None
        self._pending: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []

    def check(self) -> None:
        """Always available: the queue lives in this process."""

    def enqueue(self, job_id: str) -> None:
        if self._loop is None or self._queue is None:
            raise NotReadyError("the in-process job runner is not started")
        self._loop.call_soon_threadsafe(self._put, job_id)

    def _put(self, job_id: str) -> None:
        if job_id not in self._pending:  # a job already waiting needs no second run
            self._pending.add(job_id)
            assert self._queue is not None
            self._queue.put_nowait(job_id)

    async def start(self, service: JobService, engine: TTSEngine | None) -> None:
        if engine is None:
            raise NotReadyError("the in-process job runner needs an engine")
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        runner = JobRunner(service, engine)
        self._tasks = [asyncio.create_task(self._work(runner)) for _ in range(self.concurrency)]

    async def _work(self, runner: JobRunner) -> None:
        assert self._queue is not None
        while True:
            job_id = await self._queue.get()
            self._pending.discard(job_id)
            try:
                await runner.run_job(job_id)
            except NotReadyError as e:  # outage: the reaper re-dispatches the job once it is over
                logger.warning("job %s paused: %s", job_id, e)
            except Exception:
                logger.exception("job %s: runner crashed; the reaper will retry", job_id)
            finally:
                self._queue.task_done()

    async def join(self) -> None:
        """Wait until every job enqueued so far has had its run (finished, failed, paused or, once
        cancelled, given up): what a graceful drain, or a test, waits for."""
        assert self._queue is not None
        await self._queue.join()

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
