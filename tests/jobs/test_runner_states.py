"""The runner's state transitions, driven step by step on each deployment (nobody else runs the
jobs: the dispatcher only records what it was asked to queue)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from conftest import deployment_settings
from sqlalchemy import update

from fasttts.db import Segment
from fasttts.engine.base import TTSEngine
from fasttts.errors import NotFoundError
from fasttts.jobs import JobRunner, JobService, JobSpec, build_job_service
from fasttts.storage import segment_key

pytestmark = pytest.mark.asyncio(loop_scope="session")

SPLIT = {"length_threshold": 8, "window_size": 8}
LONG_AGO = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
TEXT = "The first sentence is here. A second sentence follows it closely. Then a third one comes."


class RecordingDispatcher:
    """Queues nothing: the test plays the workers."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def enqueue(self, job_id: str) -> None:
        self.sent.append(job_id)

    def check(self) -> None:
        pass

    async def start(self, service: JobService, engine: TTSEngine | None) -> None:
        pass

    async def stop(self) -> None:
        pass


@pytest_asyncio.fixture(params=["embedded", "services"])
async def idle(request: pytest.FixtureRequest, tmp_path, piper) -> AsyncIterator[JobService]:
    service = build_job_service(deployment_settings(request.param, tmp_path, request, job_max_attempts=2), piper, RecordingDispatcher())
    await service.start(maintain=False)
    yield service
    await service.stop()


def expire_leases(service: JobService, job_id: str) -> None:
    """What the death of the worker holding them leaves behind: leases that ran out."""
    with service.session() as s:
        s.execute(update(Segment).where(Segment.job_id == job_id, Segment.status == "running").values(lease_expires_at=LONG_AGO))
        s.commit()


async def test_a_segment_that_kills_its_worker_fails_the_job_at_the_attempt_limit(idle, piper) -> None:
    job, _ = await idle.submit(JobSpec(kind="speak", text="One sentence that crashes the worker."))
    for attempt in (1, 2):  # each claim's worker dies mid-segment (no error is ever reported)
        (claim,) = await asyncio.to_thread(JobRunner(idle, piper, batch_size=1)._claim, job.id)
        assert claim.job_id == job.id and claim.attempt == attempt
        await asyncio.to_thread(expire_leases, idle, job.id)
    claims = await asyncio.to_thread(JobRunner(idle, piper, batch_size=1)._claim, job.id)
    assert [c for c in claims if c.job_id == job.id] == []
    failed = await asyncio.to_thread(idle.get, job.id)
    assert failed.status == "failed" and "segment 0 was started 2 times" in failed.error


async def test_a_job_is_assembled_when_its_last_segment_is_done(idle, piper) -> None:
    short, _ = await idle.submit(JobSpec(kind="speak", text="Only this.", output_format="wav"))
    long, _ = await idle.submit(JobSpec(kind="speak", text=TEXT, split=SPLIT, output_format="wav"))
    runner = JobRunner(idle, piper, batch_size=8)
    claims = await asyncio.to_thread(runner._claim, short.id)
    mine = [c for c in claims if c.job_id == short.id]
    assert len(mine) == 1 and len(claims) > 1  # the batch holds the other job's segments too
    await runner._one(mine[0])
    done = await asyncio.to_thread(idle.get, short.id)
    assert done.status == "succeeded" and "audio.wav" in done.result  # before the rest of the batch ran
    assert (await asyncio.to_thread(idle.get, long.id)).status == "running"
    await asyncio.to_thread(idle.cancel, long.id)  # the database is shared with the tests after this one


async def test_a_segment_finished_after_its_job_was_deleted_leaves_no_file(idle, piper) -> None:
    job, _ = await idle.submit(JobSpec(kind="speak", text=TEXT, split=SPLIT))
    runner = JobRunner(idle, piper)
    claims = [c for c in await asyncio.to_thread(runner._claim, job.id) if c.job_id == job.id]
    assert claims
    await asyncio.to_thread(idle.delete, job.id)  # while the worker synthesises
    for claim in claims:
        await runner._one(claim)
    assert not [k for c in claims if idle.store.exists(k := segment_key(job.id, c.index))]
    with pytest.raises(NotFoundError):
        await asyncio.to_thread(idle.get, job.id)


async def test_an_unknown_voice_fails_the_submit_not_the_job(idle) -> None:
    with pytest.raises(NotFoundError, match="nobody"):
        await idle.submit(JobSpec(kind="speak", text="Hi.", voice={"name": "nobody"}))
    with pytest.raises(NotFoundError, match="ghost"):
        await idle.submit(JobSpec(kind="multi_speak", text="<role:ghost> Boo."))
    assert idle.dispatcher.sent == []  # type: ignore[attr-defined]
