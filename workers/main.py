"""``fasttts worker``: start a Celery worker on the job queue.

Defaults to a prefork pool of one process per worker (one engine, one GPU); extra arguments go to
``celery worker`` unchanged (e.g. ``--concurrency 2 --loglevel debug``).
"""

from __future__ import annotations

import sys


def worker(argv: list[str] | None = None) -> int:
    from workers.app import app, settings

    if not settings.broker_url:
        print("fasttts worker needs a broker: set FASTTTS_BROKER_URL (e.g. redis://localhost:6379/0)", file=sys.stderr)
        return 2
    args = ["worker", "--queues", settings.job_queue, "--concurrency", "1", "--loglevel", "INFO", *(argv or [])]
    app.worker_main(args)
    return 0
