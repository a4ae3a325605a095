"""Every job and segment state transition, written once.

A job goes ``queued → running → succeeded | failed | cancelled``; a segment ``pending → running
(leased) → done``, back to ``pending`` when its lease is released or expires. Each transition is
one guarded ``UPDATE`` (its ``WHERE`` re-checks the state it leaves), so of two processes racing
for the same row exactly one wins, and the caller learns which from the return value. Callers own
the session and commit.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, Executable, or_, select, update
from sqlalchemy.orm import Session

from fasttts.db import Job, Segment, utcnow

RUNNABLE = ("queued", "running")
"""Job states in which segments may be claimed and finished."""


def _changed(s: Session, statement: Executable) -> int:
    """Rows an ``UPDATE`` changed (0: the state it leaves was no longer there: another process won)."""
    return cast(CursorResult[Any], s.execute(statement)).rowcount


def claimable(now: dt.datetime) -> ColumnElement[bool]:
    """A segment nobody holds: pending, or running under a lease that ran out (its worker died)."""
    return or_(Segment.status == "pending", (Segment.status == "running") & (Segment.lease_expires_at < now))


def claim_segment(s: Session, segment_id: int, job_id: str, owner: str, now: dt.datetime, lease: dt.timedelta) -> bool:
    """Lease a segment to ``owner`` (counting the attempt) and mark its job running."""
    won = _changed(
        s,
        update(Segment)
        .where(Segment.id == segment_id, claimable(now))
        .values(status="running", lease_owner=owner, lease_expires_at=now + lease, attempt=Segment.attempt + 1),
    )
    if won:
        s.execute(update(Job).where(Job.id == job_id, Job.status == "queued").values(status="running", started_at=now))
    return bool(won)


def renew_leases(s: Session, ids: list[int], owner: str, until: dt.datetime) -> None:
    s.execute(update(Segment).where(Segment.id.in_(ids), Segment.lease_owner == owner, Segment.status == "running").values(lease_expires_at=until))


def runnable_segments(s: Session, ids: list[int]) -> set[int]:
    """Those of ``ids`` whose job still exists and is runnable."""
    rows = s.execute(select(Segment.id).join(Job, Job.id == Segment.job_id).where(Segment.id.in_(ids), Job.status.in_(RUNNABLE)))
    return set(rows.scalars())


def mark_segment_done(s: Session, segment_id: int, job_id: str, owner: str, key: str, num_samples: int, rate: int) -> tuple[bool, bool]:
    """Record a finished segment if ``owner`` still holds it and its job is still runnable (a
    cancelled or deleted job takes no more work). Returns (recorded, the job is now complete)."""
    runnable = select(Job.id).where(Job.id == job_id, Job.status.in_(RUNNABLE)).exists()
    won = _changed(
        s,
        update(Segment)
        .where(Segment.id == segment_id, Segment.lease_owner == owner, Segment.status == "running", runnable)
        .values(
            status="done", storage_key=key, num_samples=num_samples, duration_s=num_samples / rate, done_at=utcnow(), lease_owner=None, lease_expires_at=None
        ),
    )
    if not won:
        return False, False
    s.execute(update(Job).where(Job.id == job_id).values(segments_done=Job.segments_done + 1, audio_seconds=Job.audio_seconds + num_samples / rate))
    done, total = s.execute(select(Job.segments_done, Job.segments_total).where(Job.id == job_id)).one()
    return True, done >= total


def release_segments(s: Session, ids: list[int], owner: str, *, refund: bool) -> None:
    """Give leased segments back. ``refund``: the attempt was not the segment's fault (its job was
    cancelled, the database or storage went away), so it does not count against the limit."""
    values: dict[str, Any] = {"status": "pending", "lease_owner": None, "lease_expires_at": None}
    if refund:
        values["attempt"] = Segment.attempt - 1
    s.execute(update(Segment).where(Segment.id.in_(ids), Segment.lease_owner == owner, Segment.status == "running").values(**values))


def requeue_expired(s: Session, now: dt.datetime) -> int:
    """Put segments whose lease ran out (their worker died) back to pending; the attempt stays
    counted, so a segment that kills its worker every time fails its job at the limit."""
    return _changed(
        s, update(Segment).where(Segment.status == "running", Segment.lease_expires_at < now).values(status="pending", lease_owner=None, lease_expires_at=None)
    )


def finish_job(s: Session, job_id: str, status: str, ttl_s: float, **values: Any) -> bool:
    """The one "finish a job" update: a runnable job becomes ``status`` (succeeded, failed,
    cancelled) with its finish and expiry times; False if it was no longer runnable."""
    now = utcnow()
    return bool(
        _changed(
            s,
            update(Job)
            .where(Job.id == job_id, Job.status.in_(RUNNABLE))
            .values(status=status, finished_at=now, expires_at=now + dt.timedelta(seconds=ttl_s), **values),
        )
    )
