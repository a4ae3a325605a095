"""A real outage of each dependency, as the server sees one: the database and the broker are
reached through TCP proxies this test owns (the shared PostgreSQL and Redis keep running), which
are taken down (connections refused, open ones cut) and brought back; the local store's directory
is removed and recreated.

``/ready`` answers 503 naming the lost dependency and 200 once it is back; the ``Retry-After`` of
the 503s grows with consecutive failures and starts at 1 s again after the recovery.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from api_fakes import FakeEngine
from conftest import running
from service_fixtures import REDIS_URL, Proxy, create_pg_database, drop_pg_database

from fasttts.config import Settings

pytestmark = [pytest.mark.services, pytest.mark.asyncio(loop_scope="session")]


def _through(url: str, proxy: Proxy) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=f"{parts.username + '@' if parts.username else ''}127.0.0.1:{proxy.port}").geturl()


@pytest.fixture
def proxied(settings: Settings) -> Iterator[tuple[Settings, Proxy, Proxy]]:
    pg = create_pg_database()
    pg_parts, redis_parts = urlsplit(pg), urlsplit(REDIS_URL)
    db_proxy, broker_proxy = Proxy(pg_parts.port or 5432), Proxy(redis_parts.port or 6379)
    redis_db14 = urlsplit(_through(REDIS_URL, broker_proxy))._replace(path="/14").geturl()
    updated = settings.model_copy(
        update={"database_url": _through(pg, db_proxy), "broker_url": redis_db14, "job_queue": f"outage-{uuid.uuid4().hex[:8]}"}
    )  # no worker of anyone else's takes its jobs
    try:
        yield updated, db_proxy, broker_proxy
    finally:
        db_proxy.close()
        broker_proxy.close()
        drop_pg_database(pg)


async def _ready_again(client) -> None:
    """Poll /ready until the dependency answers again (pools drop their dead connections first)."""
    for _ in range(100):
        if (await client.get("/ready")).status_code == 200:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"/ready did not recover: {(await client.get('/ready')).text}")


async def test_lost_dependencies_are_reported_and_retry_after_backs_off(proxied):
    settings, db_proxy, broker_proxy = proxied
    async with running(settings, FakeEngine()) as client:
        assert (await client.get("/ready")).status_code == 200
        store_root = client.app.state.jobs.store.root

        for lose, regain, name in (
            (db_proxy.down, db_proxy.restore, "database"),
            (broker_proxy.down, broker_proxy.restore, "broker"),
            (lambda: shutil.rmtree(store_root), lambda: store_root.mkdir(parents=True), "storage"),
        ):
            lose()
            ready = await client.get("/ready")
            assert ready.status_code == 503 and set(ready.json()["lost"]) == {name}, ready.text
            waits = [int(ready.headers["retry-after"])]
            for _ in range(3):
                r = await client.post("/v1/jobs", json={"kind": "speak", "text": "during the outage"})
                assert r.status_code == 503, (name, r.text)
                waits.append(int(r.headers["retry-after"]))
            assert waits == [1, 2, 4, 8], (name, waits)  # doubling with each consecutive failure
            regain()
            await _ready_again(client)
            r = await client.get("/v1/jobs")
            assert r.status_code == 200, r.text
        db_proxy.down()  # a new outage starts at 1 s again
        r = await client.get("/v1/jobs")
        assert r.status_code == 503 and r.headers["retry-after"] == "1", r.text
