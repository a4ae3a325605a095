"""Real Celery workers on Redis, PostgreSQL and SeaweedFS: a worker SIGKILLed mid-job loses nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from conftest import wait_final

from fasttts.config import Settings
from fasttts.db import upgrade_to_head
from fasttts.jobs import JobSpec, build_job_service
from fasttts.storage import job_prefix, segment_key
from workers.dispatch import CeleryDispatcher

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.services, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def worker_env(tmp_path, pg_url, seaweed) -> dict[str, str]:
    upgrade_to_head(pg_url)
    return {
        "FASTTTS_DATABASE_URL": pg_url,
        "FASTTTS_BROKER_URL": "redis://127.0.0.1:6379/0",
        "FASTTTS_JOB_QUEUE": f"fasttts-test-{uuid.uuid4().hex[:8]}",
        "FASTTTS_S3_BUCKET": seaweed.bucket,
        "FASTTTS_S3_ENDPOINT_URL": seaweed.endpoint,
        "FASTTTS_S3_PREFIX": f"{tmp_path.name}/",
        "FASTTTS_S3_ACCESS_KEY_ID": "test",
        "FASTTTS_S3_SECRET_ACCESS_KEY": "test",
        "FASTTTS_SEGMENT_LEASE_S": "2",
        "FASTTTS_JOB_BATCH_SIZE": "2",
        "FASTTTS_DATA_DIR": str(tmp_path),
        "FASTTTS_AUTO_MIGRATE": "false",
    }


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    code = "import sys; from workers.main import worker; sys.exit(worker(['--without-mingle', '--without-gossip', '--loglevel', 'WARNING']))"
    with open(log, "ab") as out:  # the worker has its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=os.environ | env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def settings_from(env: dict[str, str]) -> Settings:
    return Settings(**{k.removeprefix("FASTTTS_").lower(): v for k, v in env.items()})


async def test_sigkilled_worker_loses_nothing_and_repeats_only_inflight(worker_env, piper, tmp_path) -> None:
    settings = settings_from(worker_env)
    service = build_job_service(settings, piper, CeleryDispatcher(settings))
    await service.start()  # as the API does: its reaper sends back the job whose worker died with its message
    text = " ".join(f"This is sentence number {i} of the long job." for i in range(16))
    job, _ = await service.submit(JobSpec(kind="speak", text=text, output_format="wav", split={"length_threshold": 10, "window_size": 10}))
    total = job.segments_total
    assert total >= 8
    log = tmp_path / "worker.log"
    first = start_worker(worker_env, log)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 90
        while (await asyncio.to_thread(service.get, job.id)).segments_done < 3:
            assert first.poll() is None and loop.time() < deadline, log.read_text()[-3000:]
            await asyncio.sleep(0.05)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        segs = await asyncio.to_thread(service.segments, job.id)
        in_flight = {s.index for s in segs if s.status == "running"}
        done_before = {s.index for s in segs if s.status == "done"}
        assert len(done_before) < total
        second = start_worker(worker_env, log)
        try:
            job = await wait_final(service, job.id, timeout=120)
        finally:
            os.killpg(second.pid, signal.SIGKILL)
            second.wait()
        assert job.status == "succeeded", job.error
        segs = await asyncio.to_thread(service.segments, job.id)
        # every segment synthesised exactly once, except those the killed worker held in flight
        attempts = {s.index: s.attempt for s in segs}
        assert all(attempts[i] == 1 for i in attempts if i not in in_flight), attempts
        assert all(attempts[i] == 2 for i in in_flight), (attempts, in_flight)
        assert sum(attempts.values()) == total + len(in_flight)
        # one stored object per segment, at the key derived from its index: nothing written twice
        keys = set(service.store.list(job_prefix(job.id) + "segments/"))
        assert keys == {segment_key(job.id, i) for i in range(total)}
        assert job.result and service.store.exists(job.result["audio.wav"])
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        await service.stop()
