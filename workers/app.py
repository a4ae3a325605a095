"""The Celery app, configured from :class:`~fasttts.config.Settings`.

Tasks are acknowledged only after they finish (``acks_late``) and requeued if the worker process
dies (``reject_on_worker_lost``); one task at a time per process (``prefetch 1``) since a worker
already batches segments of several jobs itself. Losing a message is harmless anyway: the job's
state lives in the database and the reaper re-dispatches jobs nobody works on.
"""

from __future__ import annotations

from celery import Celery

from fasttts.config import Settings


def make_celery(settings: Settings) -> Celery:
    app = Celery("fasttts", broker=settings.broker_url, include=["workers.tasks"])
    app.conf.update(
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
        beat_schedule={
            "fasttts-reap": {"task": "fasttts.reap", "schedule": max(1.0, settings.segment_lease_s / 2)},
            "fasttts-expire": {"task": "fasttts.expire", "schedule": 300.0},
        },
    )
    return app


settings = Settings()
app = make_celery(settings)
