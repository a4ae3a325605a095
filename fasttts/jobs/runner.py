"""Run jobs segment by segment, resumably, under leases.

A runner claims a batch of pending segments (this job's first, then other jobs' to fill the batch),
synthesises them concurrently on the engine (which batches across requests), writes each one's
audio to a key derived from (job, index), and marks it done only while it still holds the lease.
A watcher task renews the leases and aborts segments whose job was cancelled or deleted. When a
worker dies its leases run out and the segments are claimable again, so the next runner redoes
only what was in flight; a segment claimed ``job_max_attempts`` times without finishing (its input
kills the worker every time) fails its job at the next claim. The runner that finishes a job's
last segment assembles the job at once. Every state change goes through :mod:`fasttts.jobs.store`.
The same code runs in Celery workers and in-process.
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
from sqlalchemy import case, func, select, update

from fasttts.db import Job, utcnow
from fasttts.db import Segment as SegmentRow
from fasttts.engine.base import Segment, TTSEngine
from fasttts.errors import FastTTSError, NotReadyError
from fasttts.jobs import store
from fasttts.jobs.assemble import Piece, assemble
from fasttts.jobs.plan import segment_voice
from fasttts.jobs.service import JobService
from fasttts.jobs.spec import JobSpec
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
    position: tuple[int, int]
    """(index within its chapter, the chapter's number of segments): a model whose segments differ
    by position (MegaTTS3 starts the first with a lead-in and ends only the last with a final
    pause) needs it, as a request's segments have it. Each chapter is placed as a request of its
    own, so every chapter file ends as a whole request does (a job that is not an audiobook is one
    chapter: its segments' places in the job)."""


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
        """Work until ``job_id`` has nothing left to claim (jobs are assembled as their last segment
        finishes); then assemble ``job_id`` if it is complete but not assembled (its last segment's
        worker died before assembling, and the reaper sent the job again). Transient failures
        (database, storage down) propagate so the caller retries later."""
        while True:
            claims = await self.service.in_thread(self._claim, job_id)
            if not claims:
                break
            await self._run_batch(claims)
        await self.service.in_thread(self._finish_if_complete, job_id)

    # ------------------------------------------------------------------ claiming (sync, in a thread)
    def _claim(self, prefer_job: str) -> list[Claim]:
        now = utcnow()
        claims: list[Claim] = []
        exhausted: list[str] = []
        with self.service.session() as s:
            candidates = s.execute(
                select(SegmentRow.id, SegmentRow.job_id, SegmentRow.index, SegmentRow.attempt)
                .join(Job, Job.id == SegmentRow.job_id)
                .where(store.claimable(now), Job.status.in_(store.RUNNABLE))
                .order_by(case((SegmentRow.job_id == prefer_job, 0), else_=1), Job.created_at, SegmentRow.job_id, SegmentRow.index)
                .limit(self.batch_size * 2)
            ).all()
            for seg_id, jid, index, attempt in candidates:
                if len(claims) >= self.batch_size:
                    break
                if jid in exhausted:
                    continue
                if attempt >= self.settings.job_max_attempts:
                    # claimed that often and never finished: its worker died each time (a crash is never reported)
                    message = f"segment {index} was started {attempt} times and never finished (its worker died each time)"
                    if store.finish_job(s, jid, "failed", self.settings.job_result_ttl_s, error=message):
                        exhausted.append(jid)
                    s.commit()
                    continue
                if store.claim_segment(s, seg_id, jid, self.owner, now, self.lease):
                    s.commit()
                    row = s.get_one(SegmentRow, seg_id)
                    s.refresh(row)
                    job = s.get_one(Job, jid)
                    first, count = s.execute(
                        select(func.min(SegmentRow.index), func.count()).where(SegmentRow.job_id == jid, SegmentRow.chapter == row.chapter)
                    ).one()
                    claims.append(Claim(row.id, jid, row.index, row.text, row.voice, row.attempt, job.request, (row.index - first, count)))
                else:  # a racing worker won it
                    s.rollback()
        for jid in exhausted:
            logger.warning("job %s failed: a segment exhausted its attempts", jid)
            self._notify(jid)
        return claims

    def _renew(self, ids: list[int]) -> set[int]:
        """Extend our leases; returns the ids' jobs that are no longer runnable (cancelled/deleted)."""
        with self.service.session() as s:
            store.renew_leases(s, ids, self.owner, utcnow() + self.lease)
            s.commit()
            alive = store.runnable_segments(s, ids)
        return {i for i in ids if i not in alive}

    def _mark_done(self, claim: Claim, key: str, num_samples: int) -> tuple[bool, bool]:
        with self.service.session() as s:
            won, complete = store.mark_segment_done(s, claim.id, claim.job_id, self.owner, key, num_samples, self.engine.sample_rate)
            s.commit()
        return won, complete

    def _discard_if_orphaned(self, job_id: str, key: str) -> None:
        """A segment written after its job was cancelled or deleted: remove the file, which nothing
        would ever read or delete. (If the job still runs, another worker took the lease over and
        writes the same key: keep it.)"""
        with self.service.session() as s:
            status = s.scalar(select(Job.status).where(Job.id == job_id))
        if status not in store.RUNNABLE:
            self.service.store.delete(key)

    def _release(self, ids: list[int], *, refund: bool) -> None:
        with self.service.session() as s:
            store.release_segments(s, ids, self.owner, refund=refund)
            s.commit()

    def _fail(self, job_id: str, message: str) -> None:
        with self.service.session() as s:
            won = store.finish_job(s, job_id, "failed", self.settings.job_result_ttl_s, error=message)
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
        refund: list[int] = []
        release: list[int] = []
        for claim, result in zip(claims, results):
            if isinstance(result, asyncio.CancelledError):
                refund.append(claim.id)  # its job was cancelled or deleted
            elif isinstance(result, (NotReadyError, OSError)):  # database/storage outage: retry later
                refund.append(claim.id)
                transient = transient or result
            elif isinstance(result, BaseException):
                if claim.attempt >= self.settings.job_max_attempts or isinstance(result, FastTTSError):
                    msg = getattr(result, "message", None) or str(result) or type(result).__name__
                    await self.service.in_thread(self._fail, claim.job_id, f"segment {claim.index} ({claim.text[:40]!r}) failed: {msg}")
                release.append(claim.id)
                logger.warning("segment %s/%d failed: %r", claim.job_id, claim.index, result)
        if refund:
            await self.service.in_thread(self._release, refund, refund=True)
        if release:
            await self.service.in_thread(self._release, release, refund=False)
        if transient is not None:
            raise transient

    async def _one(self, claim: Claim) -> None:
        voice = segment_voice(claim.voice, claim.request)
        sampling = JobSpec.from_dict(claim.request).sampling_params()
        audio = await self.engine.synthesize_segment(Segment(claim.text, voice, index=claim.index, extra={"position": claim.position}), sampling)
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        key = segment_key(claim.job_id, claim.index)
        await self.service.in_thread(self.service.store.put, key, audio.astype("<f4").tobytes())
        won, complete = await self.service.in_thread(self._mark_done, claim, key, len(audio))
        if not won:  # its job stopped (or another worker took the lease over): hand it back, drop the file
            await self.service.in_thread(self._release, [claim.id], refund=True)
            await self.service.in_thread(self._discard_if_orphaned, claim.job_id, key)
        elif complete:
            try:
                await self.service.in_thread(self._finish_if_complete, claim.job_id)
            except Exception:  # the segment is done; the reaper sends the job again to assemble it
                logger.exception("assembling job %s failed; it will be retried", claim.job_id)

    async def _watch(self, tasks: dict[int, asyncio.Task[None]]) -> None:
        """Renew leases; cancel the engine call of segments whose job stopped being runnable."""
        while True:
            await asyncio.sleep(self.poll_s)
            running = [sid for sid, t in tasks.items() if not t.done()]
            if not running:
                return
            try:
                dead = await self.service.in_thread(self._renew, running)
            except NotReadyError:
                continue  # database blip: keep going, the lease still has time
            for sid in dead:
                tasks[sid].cancel()

    # ------------------------------------------------------------------ completion
    def _finish_if_complete(self, job_id: str) -> None:
        with self.service.session() as s:
            job = s.get(Job, job_id)
            if job is None or job.status not in store.RUNNABLE:
                return
            rows = list(s.scalars(select(SegmentRow).where(SegmentRow.job_id == job_id).order_by(SegmentRow.index)))
        if any(r.status != "done" for r in rows):
            return
        files = self.service.store
        pieces: list[Piece] = []
        for r in rows:
            assert r.storage_key is not None  # set with status "done"
            pieces.append(Piece(r.index, r.chapter, r.text, np.frombuffer(files.get(r.storage_key), dtype="<f4")))
        rate = job.sample_rate or self.engine.sample_rate
        result = assemble(
            job.id, job.kind, job.output_format, rate, pieces, job.request.get("chapters", [""]), files, crossfade_s=self.engine.segment_crossfade_s
        )
        with self.service.session() as s:
            won = store.finish_job(s, job_id, "succeeded", self.settings.job_result_ttl_s, result=result)
            s.commit()
            status = s.scalar(select(Job.status).where(Job.id == job_id))
        if won:
            logger.info("job %s succeeded: %d segments, %.1f s of audio", job_id, len(rows), sum(r.duration_s or 0 for r in rows))
            self._notify(job_id)
        elif status != "succeeded":  # cancelled or deleted while assembling: nothing will read these
            for key in result.values():
                files.delete(key)

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
