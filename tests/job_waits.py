"""Waiting for jobs without sleeping: the events the code under test gives, and the one bounded poll
that remains (a Celery worker is another process, and the database it writes has no event)."""

from __future__ import annotations

import asyncio
from typing import Any

from fasttts.db import FINAL_STATUSES, Job
from fasttts.engine.base import TTSEngine
from fasttts.jobs import InProcessDispatcher, JobService


async def wait_final(service: JobService, job_id: str, timeout: float = 60.0) -> Job:
    """The job once it is final. In-process, the dispatcher's ``join()`` is the event: every run
    enqueued so far has ended, so the job is final now or never will be without the reaper (an
    error naming its state). With a Celery dispatcher the job runs in a worker process: its state in
    the database is polled, bounded by ``timeout``."""
    if isinstance(service.dispatcher, InProcessDispatcher):
        await asyncio.wait_for(service.dispatcher.join(), timeout)
        job = await asyncio.to_thread(service.get, job_id)
        if job.status not in FINAL_STATUSES:
            raise AssertionError(f"job {job_id} is still {job.status} after its run: {service.progress(job)}")
        return job
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        job = await asyncio.to_thread(service.get, job_id)
        if job.status in FINAL_STATUSES:
            return job
        if loop.time() > deadline:
            raise AssertionError(f"job {job_id} still {job.status} after {timeout}s: {service.progress(job)}")
        await asyncio.sleep(0.1)


class SignallingEngine:
    """A real engine that sets :attr:`synthesised` once a segment's synthesis has returned: what a
    test waits on to act while a job is running (cancel it, cut its storage), instead of polling the
    job's progress. Everything else is the wrapped engine's."""

    def __init__(self, engine: TTSEngine) -> None:
        self._engine = engine
        self.synthesised = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    async def synthesize_segment(self, *args: Any, **kwargs: Any) -> Any:
        audio = await self._engine.synthesize_segment(*args, **kwargs)
        self.synthesised.set()
        return audio
