"""One engine per worker process, loaded once, driven by one long-lived event loop.

Celery tasks are synchronous; the engine and runner are asyncio. A dedicated loop thread keeps the
engine's background machinery alive between tasks, and tasks submit coroutines to it. A reaper
thread runs in every worker too, so abandoned segments come back even without celery beat.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from fasttts.config import Settings
from fasttts.jobs import JobRunner, JobService, build_job_service

logger = logging.getLogger(__name__)
T = TypeVar("T")


class WorkerRuntime:
    def __init__(self, settings: Settings) -> None:
        from fasttts.models.registry import AutoEngine
        from workers.dispatch import CeleryDispatcher

        self.settings = settings
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="fasttts-engine-loop", daemon=True).start()
        self.engine = AutoEngine(settings)
        self.run(self.engine.start())
        self.service: JobService = build_job_service(settings, self.engine, CeleryDispatcher(settings))
        self.runner = JobRunner(self.service, self.engine)
        self._stop = threading.Event()
        threading.Thread(target=self._reap_forever, name="fasttts-reaper", daemon=True).start()
        logger.info("worker runtime ready: %s at %d Hz, owner %s", type(self.engine).__name__, self.engine.sample_rate, self.runner.owner)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def _reap_forever(self) -> None:
        interval = max(0.5, self.settings.segment_lease_s / 2)
        while not self._stop.wait(interval):
            try:
                self.service.reap()
            except Exception as e:
                logger.warning("reaper skipped a round: %s", e)


_runtime: WorkerRuntime | None = None
_lock = threading.Lock()


def get_runtime(settings: Settings) -> WorkerRuntime:
    """The process's runtime, created on first use (after fork, so each child has its own)."""
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = WorkerRuntime(settings)
        return _runtime
