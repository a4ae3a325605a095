"""The job service: submit with idempotency, inspect, list, cancel, delete, reap and expire.

Everything here is synchronous (SQLAlchemy sessions, boto3); the HTTP layer calls it in a thread.
A job and all its segments are written in one transaction and only then handed to the dispatcher
("enqueue after commit"): a worker can never see a job that is not in the database, and a job whose
enqueue was lost (broker down, worker killed) is found again by :meth:`JobService.reap`.
"""

from __future__ import annotations

import asyncio
import builtins
import datetime as dt
import functools
import logging
import re
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from fasttts.config import Settings
from fasttts.db import FINAL_STATUSES, Job, Segment, close_sessions, prepare_schema, utcnow
from fasttts.engine.base import TTSEngine
from fasttts.errors import InvalidRequestError, NotFoundError, NotReadyError, UnsupportedFeatureError
from fasttts.jobs import store
from fasttts.jobs.plan import PlannedSegment, check_job_chars, pin_job_voices, plan_job
from fasttts.jobs.spec import JobSpec
from fasttts.net import check_url
from fasttts.storage import ObjectStore, StorageUnavailableError, job_prefix
from fasttts.text.chapters import detect_chapters

logger = logging.getLogger(__name__)

T = TypeVar("T")

JOB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class JobsUnavailableError(NotReadyError):
    """The database, broker or object store is down: HTTP 503 with ``Retry-After``."""

    def __init__(self, message: str, *, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Dispatcher(Protocol):
    """Hands a committed job to whatever runs it (Celery, or the in-process runner)."""

    def enqueue(self, job_id: str) -> None: ...

    async def start(self, service: JobService, engine: TTSEngine | None) -> None:
        """Start whatever runs jobs locally (the in-process runner); Celery needs nothing here."""
        ...

    async def stop(self) -> None: ...

    def check(self) -> None:
        """Raise :class:`JobsUnavailableError` if jobs cannot be queued right now."""
        ...


@dataclass
class Progress:
    segments_done: int
    segments_total: int
    percent: float
    audio_seconds: float
    eta_s: float | None


class JobService:
    def __init__(self, settings: Settings, db: sessionmaker[Session], store: ObjectStore, dispatcher: Dispatcher, engine: TTSEngine | None = None) -> None:
        self.settings = settings
        self.db = db
        self.store = store
        self.dispatcher = dispatcher
        self.engine = engine
        self._maintenance: asyncio.Task[None] | None = None
        self._threads = ThreadPoolExecutor(thread_name_prefix="fasttts-jobs")
        """Where the runner's and the maintenance loop's blocking calls run (:meth:`in_thread`)."""

    # ------------------------------------------------------------------ lifecycle
    async def start(self, *, maintain: bool = True) -> None:
        """Prepare the schema, start the dispatcher's runner (if local) and, with ``maintain``, the
        maintenance loop (reaper + expiry). The API processes maintain; Celery workers do not
        (:mod:`fasttts.services`), so the reaper runs in exactly one kind of process."""
        await asyncio.to_thread(prepare_schema, self.settings.resolved_database_url, migrate=self.settings.auto_migrate)
        await self.dispatcher.start(self, self.engine)
        if maintain:
            self._maintenance = asyncio.create_task(self._maintain())

    async def stop(self) -> None:
        """Stop the maintenance loop and the dispatcher, then close the database and object-store
        connections."""
        if self._maintenance is not None:
            self._maintenance.cancel()
            await asyncio.gather(self._maintenance, return_exceptions=True)
        await self.dispatcher.stop()
        # A cancelled task's blocking call runs on to its end; wait for it, so that the session it
        # holds is back in the pool (and closed with it) rather than left to the garbage collector.
        await asyncio.to_thread(self._threads.shutdown)
        await asyncio.to_thread(close_sessions, self.db)
        await asyncio.to_thread(self.store.close)

    async def in_thread(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``asyncio.to_thread`` on the service's own threads: the blocking calls (database,
        storage) of the job runner and the maintenance loop, which :meth:`stop` waits for."""
        return await asyncio.get_running_loop().run_in_executor(self._threads, functools.partial(fn, *args, **kwargs))

    async def _maintain(self) -> None:
        """Reap abandoned segments and expire old results, forever (a failure just waits a round)."""
        interval = max(0.5, min(30.0, self.settings.segment_lease_s / 2))
        while True:
            try:
                await self.in_thread(self.reap)
                await self.in_thread(self.expire)
            except Exception as e:
                logger.warning("job maintenance skipped a round: %s", e)
            await asyncio.sleep(interval)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose connection failures surface as :class:`JobsUnavailableError`."""
        try:
            with self.db() as s:
                yield s
        except (OperationalError, DBAPIError) as e:
            if isinstance(e, IntegrityError):
                raise
            raise JobsUnavailableError(f"database unavailable: {type(e.orig or e).__name__}") from e

    # ------------------------------------------------------------------ submit
    async def submit(
        self,
        spec: JobSpec,
        *,
        job_id: str | None = None,
        idempotency_key: str | None = None,
        webhook_url: str | None = None,
        reference_audio: bytes | None = None,
        book: bytes | None = None,
        filename: str | None = None,
        content_type: str | None = None,
    ) -> tuple[Job, bool]:
        """Create a job (or return the one already made for this key/id); returns ``(job, created)``.

        Every voice the job can use is resolved first (:func:`pin_job_voices`: an unknown voice is
        a 404 now, a clone job's reference is encoded here, once, and not stored), so the stored
        job is self-contained. Audiobooks read their chapters from ``book`` (plain text, Markdown or
        EPUB bytes) or, when no file is given, from ``spec.text``. Runs on the engine's event loop;
        the blocking parts go to threads."""
        if job_id is not None and not JOB_ID_RE.match(job_id):
            raise InvalidRequestError("job id must be 1-64 characters of letters, digits, '_', '.', '-'", param="id")
        await asyncio.to_thread(self.check_request, spec, webhook_url)
        existing = await asyncio.to_thread(self._find_existing, job_id, idempotency_key)
        if existing is not None:
            return existing, False
        engine = self.engine
        assert engine is not None, "submitting jobs needs an engine to split the text"
        if spec.kind == "clone":
            if not engine.capabilities.clone:
                raise UnsupportedFeatureError(f"{engine.model_type} cannot clone from reference audio", param="reference_audio")
            if not reference_audio:
                raise InvalidRequestError("a clone job needs reference audio", param="reference_audio")
        await asyncio.to_thread(self._check_can_accept)
        await pin_job_voices(engine, spec, reference_audio)

        def plan() -> tuple[list[PlannedSegment], list[str]]:
            chapters = None
            if spec.kind == "audiobook":
                found = detect_chapters(book if book is not None else spec.text, filename=filename, content_type=content_type)
                chapters = [(c.title, c.text) for c in found]
                check_job_chars(sum(len(text) for _, text in chapters), self.settings.max_job_chars, "file" if book is not None else "text")
            return plan_job(engine, spec, chapters)

        planned, titles = await asyncio.to_thread(plan)
        return await asyncio.to_thread(self._store_job, job_id or f"job_{uuid.uuid4().hex}", spec, planned, titles, idempotency_key, webhook_url)

    def _check_can_accept(self) -> None:
        """Refuse now (503) rather than accept a job nobody can queue or store."""
        self.dispatcher.check()
        self.store.check()

    def _store_job(
        self, job_id: str, spec: JobSpec, planned: list[PlannedSegment], titles: list[str], idempotency_key: str | None, webhook_url: str | None
    ) -> tuple[Job, bool]:
        assert self.engine is not None
        request = spec.to_dict() | {"chapters": titles}
        job = Job(
            id=job_id,
            idempotency_key=idempotency_key,
            kind=spec.kind,
            status="queued",
            request=request,
            output_format=spec.output_format,
            sample_rate=self.engine.sample_rate,
            segments_total=len(planned),
            webhook_url=webhook_url,
        )
        job.segments = [Segment(index=p.index, chapter=p.chapter, text=p.text, voice=p.voice) for p in planned]
        try:
            with self.session() as s:
                s.add(job)
                s.commit()
        except IntegrityError:  # a concurrent submit with the same key or id won the race
            existing = self._find_existing(job_id, idempotency_key)
            if existing is None:
                raise
            return existing, False
        try:
            self.dispatcher.enqueue(job.id)
        except Exception:  # the job is durable; the reaper enqueues it once the broker is back
            logger.exception("enqueue of job %s failed; the reaper will retry", job.id)
        return job, True

    def check_request(self, spec: JobSpec, webhook_url: str | None) -> None:
        """The checks that need neither engine nor storage: the size of the text and the webhook
        URL's policy (which may resolve its host: blocking). ``submit`` starts with them, before it
        pins voices, which costs synthesis."""
        check_job_chars(len(spec.text), self.settings.max_job_chars, "text")
        if webhook_url is not None:
            check_url(webhook_url, allow_private=self.settings.allow_private_urls, param="webhook_url")

    def _find_existing(self, job_id: str | None, key: str | None) -> Job | None:
        if job_id is None and key is None:
            return None
        with self.session() as s:
            conds = ([Job.id == job_id] if job_id else []) + ([Job.idempotency_key == key] if key else [])
            return s.scalars(select(Job).where(or_(*conds))).first()

    # ------------------------------------------------------------------ inspect
    def get(self, job_id: str) -> Job:
        with self.session() as s:
            job = s.get(Job, job_id)
        if job is None:
            raise NotFoundError(f"job '{job_id}' not found", param="job_id")
        return job

    def list(self, *, status: str | None = None, limit: int = 20, offset: int = 0) -> tuple[list[Job], int]:
        with self.session() as s:
            q = select(Job)
            if status:
                q = q.where(Job.status == status)
            total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
            jobs = list(s.scalars(q.order_by(Job.created_at.desc(), Job.id).limit(limit).offset(offset)))
        return jobs, total

    def progress(self, job: Job) -> Progress:
        total = max(job.segments_total, 1)
        eta: float | None = None
        if job.status in store.RUNNABLE and job.started_at and job.segments_done:
            elapsed = (utcnow() - job.started_at).total_seconds()
            eta = elapsed / job.segments_done * (job.segments_total - job.segments_done)
        elif job.status == "succeeded":
            eta = 0.0
        return Progress(job.segments_done, job.segments_total, round(100.0 * job.segments_done / total, 1), round(job.audio_seconds, 3), eta)

    def segments(self, job_id: str) -> builtins.list[Segment]:  # builtins: this class has a list() method
        with self.session() as s:
            return list(s.scalars(select(Segment).where(Segment.job_id == job_id).order_by(Segment.index)))

    # ------------------------------------------------------------------ control
    def cancel(self, job_id: str) -> Job:
        """Stop a queued or running job; workers notice between segments and abort the one in flight."""
        with self.session() as s:
            store.finish_job(s, job_id, "cancelled", self.settings.job_result_ttl_s)
            s.commit()
        return self.get(job_id)

    def delete(self, job_id: str) -> None:
        """Remove the job, its segments and every stored object of it."""
        self.get(job_id)
        self.cancel(job_id)
        self._delete_storage(job_id)
        with self.session() as s:
            s.execute(delete(Job).where(Job.id == job_id))
            s.commit()

    def _delete_storage(self, job_id: str) -> None:
        try:
            self.store.delete_prefix(job_prefix(job_id))
        except StorageUnavailableError as e:
            raise JobsUnavailableError(str(e)) from e

    # ------------------------------------------------------------------ periodic
    def reap(self) -> tuple[int, int]:
        """Requeue segments whose lease expired (their worker died) and re-dispatch jobs that have
        claimable work but nobody on them. Returns ``(segments requeued, jobs re-dispatched)``."""
        now = utcnow()
        stale_before = now - dt.timedelta(seconds=self.settings.segment_lease_s)
        with self.session() as s:
            requeued = store.requeue_expired(s, now)
            s.commit()
            live = exists().where(Segment.job_id == Job.id, Segment.status == "running")
            jobs = list(s.scalars(select(Job.id).where(Job.status.in_(store.RUNNABLE), Job.updated_at < stale_before, ~live)))
            # Touch them so the next reap waits another lease period before dispatching again.
            if jobs:
                s.execute(update(Job).where(Job.id.in_(jobs)).values(updated_at=now))
                s.commit()
        dispatched = 0
        for job_id in jobs:
            try:
                self.dispatcher.enqueue(job_id)
                dispatched += 1
            except Exception:
                logger.warning("re-dispatch of job %s failed; will retry", job_id)
        if requeued or dispatched:
            logger.info("reaper: %d segment(s) requeued, %d job(s) re-dispatched", requeued, dispatched)
        return requeued, dispatched

    def expire(self, now: dt.datetime | None = None) -> int:
        """Delete finished jobs (and their audio) whose results outlived the TTL by ``now`` (default:
        the present; a test passes a moment past a job's ``expires_at`` rather than wait for it)."""
        with self.session() as s:
            ids = list(s.scalars(select(Job.id).where(and_(Job.status.in_(FINAL_STATUSES), Job.expires_at < (now or utcnow())))))
        for job_id in ids:
            self._delete_storage(job_id)
            with self.session() as s:
                s.execute(delete(Job).where(Job.id == job_id))
                s.commit()
        return len(ids)

    def check(self) -> None:
        """Readiness: database, storage and broker reachable, else :class:`JobsUnavailableError`."""
        if lost := self.unavailable():
            raise JobsUnavailableError("; ".join(lost.values()))

    def unavailable(self) -> dict[str, str]:
        """Each dependency that cannot be used right now (``database``, ``storage``, ``broker``)
        with the reason; empty when all of them answer. ``/ready`` reports these by name."""
        lost: dict[str, str] = {}
        for name, probe in (("database", self._probe_database), ("storage", self.store.check), ("broker", self.dispatcher.check)):
            try:
                probe()
            except NotReadyError as e:
                lost[name] = str(e)
        return lost

    def _probe_database(self) -> None:
        with self.session() as s:
            s.execute(select(1))

    def describe(self, job: Job) -> dict[str, Any]:
        """A JSON-able view of a job (the API adds result links)."""
        p = self.progress(job)
        return {
            "id": job.id,
            "kind": job.kind,
            "status": job.status,
            "output_format": job.output_format,
            "progress": p.__dict__,
            "error": job.error,
            "created_at": job.created_at,
            "started_at": job.started_at,
            "finished_at": job.finished_at,
            "expires_at": job.expires_at,
            "chapters": (job.request or {}).get("chapters", []) if job.kind == "audiobook" else [],
            "results": sorted((job.result or {}).keys()),
        }
