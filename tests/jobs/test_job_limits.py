"""A job's size is bounded (``max_job_chars``) before it is planned: text jobs by their text, books by
the text their chapters hold, each a 413 naming the limit, with nothing stored."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from conftest import job_settings
from limits_tools import epub_bomb
from test_api import client

from fasttts.jobs import JobService, build_job_service

pytestmark = pytest.mark.asyncio(loop_scope="session")

LIMIT = 5_000


@pytest_asyncio.fixture
async def small(tmp_path, piper) -> AsyncIterator[JobService]:
    service = build_job_service(job_settings(tmp_path, max_job_chars=LIMIT), piper)
    await service.start()
    yield service
    await service.stop()


@pytest.mark.parametrize("kind", ["speak", "multi_speak", "audiobook"])
async def test_a_text_over_the_limit_is_413_naming_it(small, kind: str) -> None:
    async with client(small) as c:
        r = await c.post("/v1/jobs", json={"kind": kind, "text": "Words go on. " * (LIMIT // 13 + 1)})
        assert r.status_code == 413 and r.json()["error"]["param"] == "text"
        assert "max_job_chars (5,000)" in r.json()["error"]["message"]
        assert (await c.get("/v1/jobs")).json()["total"] == 0
        assert (await c.post("/v1/jobs", json={"kind": kind, "text": "Words go on. " * 10})).status_code == 202


async def test_a_book_over_the_limit_is_413_naming_it(small) -> None:
    book = epub_bomb(64 * 1024)  # 64 kB of text in one chapter, a few kB zipped
    assert len(book) < LIMIT
    async with client(small) as c:
        r = await c.post("/v1/jobs", data={"request": json.dumps({"kind": "audiobook"})}, files={"file": ("book.epub", book, "application/epub+zip")})
        assert r.status_code == 413 and r.json()["error"]["param"] == "file"
        assert "max_job_chars (5,000)" in r.json()["error"]["message"]
        assert (await c.get("/v1/jobs")).json()["total"] == 0
        small_book = epub_bomb(2_000)
        r = await c.post("/v1/jobs", data={"request": json.dumps({"kind": "audiobook"})}, files={"file": ("book.epub", small_book, "application/epub+zip")})
        assert r.status_code == 202 and r.json()["progress"]["segments_total"] > 0
