"""One engine per worker process, built by the first task, driven by one long-lived event loop.

Celery tasks are synchronous; the engine and runner are asyncio. A dedicated loop thread keeps the
engine's background machinery alive between tasks, and tasks submit coroutines to it.

The engine is built lazily, in the process's first task, not when the pool process starts:
Celery's prefork pool kills a new process that has not reported in within its alive-timeout
(about 4 s), so a replacement for a dead pool process that loaded a model first would be killed
again and again. Built here, a replacement reports in at once and pays the load in its first task
(the task of the process that died comes back to it: ``reject_on_worker_lost``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from fasttts.config import Settings
from fasttts.jobs import JobRunner
from fasttts.services import Services, open_services

logger = logging.getLogger(__name__)
T = TypeVar("T")


class WorkerRuntime:
    def __init__(self, settings: Settings) -> None:
        from workers.dispatch import CeleryDispatcher

        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="fasttts-engine-loop", daemon=True).start()
        self.services: Services = self.run(open_services(settings, CeleryDispatcher(settings), sync_voices=False, maintain=False))
        self.runner = JobRunner(self.services.jobs, self.services.engine)
        engine = self.services.engine
        logger.info("worker runtime ready: %s at %d Hz, owner %s", type(engine).__name__, engine.sample_rate, self.runner.owner)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()


_settings: Settings | None = None
_runtime: WorkerRuntime | None = None
_lock = threading.Lock()


def configure(settings: Settings) -> None:
    """The settings this worker's runtime is built from (set by ``fasttts worker`` before start)."""
    global _settings
    _settings = settings


def get_runtime() -> WorkerRuntime:
    """The process's runtime, created on first use (after fork, so each pool process has its own)."""
    global _runtime
    with _lock:
        if _runtime is None:
            if _settings is None:
                raise RuntimeError("the worker runtime is not configured: start workers with `fasttts worker`")
            _runtime = WorkerRuntime(_settings)
        return _runtime
