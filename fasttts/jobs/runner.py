"""Run jobs segment by segment, resumably, under leases.

A runner claims a batch of pending segments (this job's first, then other jobs' to fill the batch),
synthesises them concurrently on the engine (which batches across requests), writes each one's
audio to a key derived from (job, index), and marks it done only while it still holds the lease.
A watcher task renews the leases and aborts segments whose job was cancelled or deleted. When a
worker dies its leases run out and :meth:`JobService.reap` puts the segments back, so the next
runner redoes only what was in flight. The same code runs in Celery workers and in-process.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import case, or_, select, update

from fasttts.db import Job, utcnow
from fasttts.db import Segment as SegmentRow
from fasttts.engine.base import Segment, TTSEngine
from fasttts.errors import FastTTSError, NotReadyError
from fasttts.jobs.assemble import Piece, assemble
from fasttts.jobs.service import JobService
from fasttts.jobs.spec import JobSpec, VoiceSpec
from fasttts.jobs.webhook import deliver
from fasttts.storage import segment_key

logger = logging.getLogger(__name__)


@dataclass
class Claim:
    id: int
    job_id: str
    index: int
    text: str
    voice: dict[str, Any]
    attempt: int
    request: dict[str, Any]


class PermanentJobError(FastTTSError):
    """A segment cannot succeed however often it is retried (bad voice, model gave no audio)."""


class JobRunner:
    def __init__(self, service: JobService, engine: TTSEngine, *, batch_size: int | None = None, owner: str | None = None) -> None:
        self.service = service
        self.engine = engine
        self.settings = service.settings
        self.batch_size = batch_size or self.settings.job_batch_size
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.lease = dt.timedelta(seconds=self.settings.segment_lease_s)
        self.poll_s = min(1.0, self.settings.segment_lease_s / 4)

    # ------------------------------------------------------------------ entry point
    async def run_job(self, job_id: str) -> None:
        """Work until ``job_id`` has nothing left to claim, then assemble whatever jobs are complete.
        Transient failures (database, storage down) propagate so the caller retries later."""
        touched = {job_id}
        while True:
            claims = await asyncio.to_thread(self._claim, job_id)
            if not claims:
                break
            touched.update(c.job_id for c in claims)
            await self._run_batch(claims)
        for jid in sorted(touched):
            await asyncio.to_thread(self._finish_if_complete, jid)

    # ------------------------------------------------------------------ claiming (sync, in a thread)
    def _claim(self, prefer_job: str) -> list[Claim]:
        now = utcnow()
        claimable = or_(SegmentRow.status == "pending", (SegmentRow.status == "running") & (SegmentRow.lease_expires_at < now))
        claims: list[Claim] = []
        with self.service.session() as s:
            candidates = s.execute(
                select(SegmentRow.id, SegmentRow.job_id)
                .join(Job, Job.id == SegmentRow.job_id)
                .where(claimable, Job.status.in_(("queued", "running")))
                .order_by(case((SegmentRow.job_id == prefer_job, 0), else_=1), Job.created_at, SegmentRow.job_id, SegmentRow.index)
                .limit(self.batch_size * 2)
            ).all()
            for seg_id, jid in candidates:
                if len(claims) >= self.batch_size:
                    break
                # The WHERE re-checks claimability atomically: of two racing workers one gets rowcount 0.
                won = s.execute(
                    update(SegmentRow)
                    .where(SegmentRow.id == seg_id, claimable)
                    .values(status="running", lease_owner=self.owner, lease_expires_at=now + self.lease, attempt=SegmentRow.attempt + 1)
                ).rowcount
                if won:
                    s.execute(update(Job).where(Job.id == jid, Job.status == "queued").values(status="running", started_at=now))
                    s.commit()
                    row = s.get(SegmentRow, seg_id)
                    s.refresh(row)
                    job = s.get(Job, jid)
                    claims.append(Claim(row.id, jid, row.index, row.text, row.voice, row.attempt, job.request))
                else:
                    s.rollback()
        return claims

    def _renew(self, ids: list[int]) -> set[int]:
        """Extend our leases; returns the ids' jobs that are no longer runnable (cancelled/deleted)."""
        now = utcnow()
        with self.service.session() as s:
            s.execute(
                update(SegmentRow)
                .where(SegmentRow.id.in_(ids), SegmentRow.lease_owner == self.owner, SegmentRow.status == "running")
                .values(lease_expires_at=now + self.lease)
            )
            s.commit()
            rows = s.execute(select(SegmentRow.id, Job.status).join(Job, Job.id == SegmentRow.job_id, isouter=True).where(SegmentRow.id.in_(ids))).all()
        alive = {sid for sid, status in rows if status in ("queued", "running")}
        return {i for i in ids if i not in alive}

    def _mark_done(self, claim: Claim, num_samples: int, rate: int) -> bool:
        now = utcnow()
        with self.service.session() as s:
            won = s.execute(
                update(SegmentRow)
                .where(SegmentRow.id == claim.id, SegmentRow.lease_owner == self.owner, SegmentRow.status == "running")
                .values(
                    status="done",
                    storage_key=segment_key(claim.job_id, claim.index),
                    num_samples=num_samples,
                    duration_s=num_samples / rate,
                    done_at=now,
                    lease_owner=None,
                    lease_expires_at=None,
                )
            ).rowcount
            if won:
                s.execute(
                    update(Job).where(Job.id == claim.job_id).values(segments_done=Job.segments_done + 1, audio_seconds=Job.audio_seconds + num_samples / rate)
                )
            s.commit()
        return bool(won)

    def _release(self, ids: list[int]) -> None:
        with self.service.session() as s:
            s.execute(
                update(SegmentRow)
                .where(SegmentRow.id.in_(ids), SegmentRow.lease_owner == self.owner, SegmentRow.status == "running")
                .values(status="pending", lease_owner=None, lease_expires_at=None)
            )
            s.commit()

    def _fail(self, job_id: str, message: str) -> None:
        now = utcnow()
        with self.service.session() as s:
            won = s.execute(
                update(Job)
                .where(Job.id == job_id, Job.status.in_(("queued", "running")))
                .values(status="failed", error=message, finished_at=now, expires_at=now + dt.timedelta(seconds=self.settings.job_result_ttl_s))
            ).rowcount
            s.commit()
        if won:
            self._notify(job_id)

    # ------------------------------------------------------------------ synthesis
    async def _run_batch(self, claims: list[Claim]) -> None:
        tasks = {c.id: asyncio.create_task(self._one(c)) for c in claims}
        watcher = asyncio.create_task(self._watch(tasks))
        try:
            results = await asyncio.gather(*tasks.values(), return_exceptions=True)
        finally:
            watcher.cancel()
            if any(not t.done() for t in tasks.values()):  # we ourselves are being cancelled
                for t in tasks.values():
                    t.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        transient: BaseException | None = None
        release: list[int] = []
        for claim, result in zip(claims, results):
            if isinstance(result, asyncio.CancelledError):
                release.append(claim.id)  # its job was cancelled or deleted
            elif isinstance(result, (NotReadyError, OSError)):  # database/storage outage: retry later
                release.append(claim.id)
                transient = transient or result
            elif isinstance(result, BaseException):
                if claim.attempt >= self.settings.job_max_attempts or isinstance(result, FastTTSError):
                    msg = getattr(result, "message", None) or str(result) or type(result).__name__
                    await asyncio.to_thread(self._fail, claim.job_id, f"segment {claim.index} ({claim.text[:40]!r}) failed: {msg}")
                release.append(claim.id)
                logger.warning("segment %s/%d failed: %r", claim.job_id, claim.index, result)
        if release:
            await asyncio.to_thread(self._release, release)
        if transient is not None:
            raise transient

    async def _one(self, claim: Claim) -> None:
        spec = VoiceSpec.from_dict(claim.voice)
        reference = await asyncio.to_thread(self.service.store.get, spec.reference_key) if spec.reference_key else None
        sampling = JobSpec.from_dict(claim.request).sampling_params()
        audio = await self.engine.synthesize_segment(Segment(claim.text, spec.to_params(reference), index=claim.index), sampling)
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        await asyncio.to_thread(self.service.store.put, segment_key(claim.job_id, claim.index), audio.astype("<f4").tobytes())
        await asyncio.to_thread(self._mark_done, claim, len(audio), self.engine.sample_rate)

    async def _watch(self, tasks: dict[int, asyncio.Task[None]]) -> None:
        """Renew leases; cancel the engine call of segments whose job stopped being runnable."""
        while True:
            await asyncio.sleep(self.poll_s)
            running = [sid for sid, t in tasks.items() if not t.done()]
            if not running:
                return
            try:
                dead = await asyncio.to_thread(self._renew, running)
            except NotReadyError:
                continue  # database blip: keep going, the lease still has time
            for sid in dead:
                tasks[sid].cancel()

    # ------------------------------------------------------------------ completion
    def _finish_if_complete(self, job_id: str) -> None:
        with self.service.session() as s:
            job = s.get(Job, job_id)
            if job is None or job.status not in ("queued", "running"):
                return
            rows = list(s.scalars(select(SegmentRow).where(SegmentRow.job_id == job_id).order_by(SegmentRow.index)))
        if any(r.status != "done" for r in rows):
            return
        store = self.service.store
        pieces = [Piece(r.index, r.chapter, r.text, np.frombuffer(store.get(r.storage_key), dtype="<f4")) for r in rows]
        rate = job.sample_rate or self.engine.sample_rate
        result = assemble(job.id, job.kind, job.output_format, rate, pieces, job.request.get("chapters", [""]), store)
        now = utcnow()
        with self.service.session() as s:
            won = s.execute(
                update(Job)
                .where(Job.id == job_id, Job.status.in_(("queued", "running")))
                .values(status="succeeded", result=result, finished_at=now, expires_at=now + dt.timedelta(seconds=self.settings.job_result_ttl_s))
            ).rowcount
            s.commit()
        if won:
            logger.info("job %s succeeded: %d segments, %.1f s of audio", job_id, len(rows), sum(r.duration_s or 0 for r in rows))
            self._notify(job_id)

    def _notify(self, job_id: str) -> None:
        job = self.service.get(job_id)
        if not job.webhook_url:
            return
        payload = {
            "id": job.id,
            "status": job.status,
            "error": job.error,
            "results": sorted((job.result or {}).keys()),
            "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        }
        status = deliver(
            job.webhook_url,
            payload,
            secret=self.settings.webhook_secret,
            allow_private=self.settings.allow_private_urls,
            deadline_s=self.settings.webhook_deadline_s,
        )
        with self.service.session() as s:
            s.execute(update(Job).where(Job.id == job_id).values(webhook_status=status))
            s.commit()
