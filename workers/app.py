"""The Celery apps, configured from :class:`~fasttts.config.Settings`.

Tasks are acknowledged only after they finish (``acks_late``) and requeued if the worker process
dies (``reject_on_worker_lost``); one task at a time per process (``prefetch 1``) since a worker
already batches segments of several jobs itself. Losing a message is harmless anyway: the job's
state lives in the database and the API's reaper re-dispatches jobs nobody works on. There is no
beat schedule: reaping and expiry run in the API processes (:mod:`fasttts.services`).
"""

from __future__ import annotations

from celery import Celery

from fasttts.config import Settings

app = Celery("fasttts", include=["workers.tasks"])
"""The worker's app: ``workers.tasks`` registers on it; ``fasttts worker`` configures it (:func:`configure`)
from its flags before starting, and pool processes inherit that configuration when they fork."""


def configure(celery: Celery, settings: Settings) -> Celery:
    celery.conf.update(
        broker_url=settings.broker_url,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=int(settings.job_task_time_limit_s),
        task_soft_time_limit=int(settings.job_task_time_limit_s * 0.95),
        task_default_queue=settings.job_queue,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"socket_connect_timeout": 3, "socket_timeout": 10, "visibility_timeout": 3600},
        worker_hijack_root_logger=False,
    )
    return celery


def make_celery(settings: Settings) -> Celery:
    """A sending app (the dispatcher's): tasks are sent by name, nothing registers on it."""
    return configure(Celery("fasttts"), settings)
