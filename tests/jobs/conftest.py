import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from job_waits import SignallingEngine, wait_final
from service_fixtures import *  # noqa: F403

from fasttts.config import Settings
from fasttts.engine.base import TTSEngine
from fasttts.jobs import JobService, build_job_service


@pytest_asyncio.fixture(scope="session")
async def piper() -> AsyncIterator[TTSEngine]:
    """The bundled Piper voice: real speech on CPU, loaded once per session."""
    from fasttts.models.registry import AutoEngine

    engine = AutoEngine(None)
    await engine.start()
    yield engine
    await engine.shutdown()


def job_settings(tmp_path, **overrides) -> Settings:
    values = dict(data_dir=tmp_path, segment_lease_s=2.0, job_result_ttl_s=3600, webhook_secret="s3cret", job_batch_size=4)
    return Settings(**(values | overrides))


def deployment_settings(kind: str, tmp_path, request: pytest.FixtureRequest, **overrides) -> Settings:
    """``embedded``: SQLite + local directory. ``services``: the real PostgreSQL on 127.0.0.1 and the
    suite's SeaweedFS S3 server (jobs still run in-process here; test_celery_worker.py covers Celery
    workers on the Redis broker)."""
    if kind == "embedded":
        return job_settings(tmp_path, **overrides)
    pg_url, seaweed = request.getfixturevalue("pg_url"), request.getfixturevalue("seaweed")
    return job_settings(
        tmp_path,
        database_url=pg_url,
        s3_bucket=seaweed.bucket,
        s3_endpoint_url=seaweed.endpoint,
        s3_prefix=f"{tmp_path.name}/",
        s3_access_key_id="test",
        s3_secret_access_key="test",
        **overrides,
    )


@pytest_asyncio.fixture(params=["embedded", "services"])
async def jobs(request: pytest.FixtureRequest, tmp_path, piper) -> AsyncIterator[JobService]:
    """A started job service on each deployment: the embedded default and the production services.
    Its engine is the Piper voice in a :class:`SignallingEngine`, so a test can act while a job runs."""
    service = build_job_service(deployment_settings(request.param, tmp_path, request), SignallingEngine(piper))  # type: ignore[arg-type]
    await service.start()
    yield service
    await service.stop()


@pytest_asyncio.fixture
async def embedded(tmp_path, piper) -> AsyncIterator[JobService]:
    """The embedded default: SQLite + local directory + in-process runner, all from Settings."""
    service = build_job_service(job_settings(tmp_path), piper)
    await service.start()
    yield service
    await service.stop()


__all__ = ["deployment_settings", "job_settings", "wait_final"]
