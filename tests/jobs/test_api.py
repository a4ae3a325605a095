"""The /v1/jobs routes over HTTP (ASGI), and outages answered with 503 then recovered from."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from conftest import job_settings
from fastapi import FastAPI
from job_waits import SignallingEngine, wait_final

from api.errors import install_error_handlers
from api.routes import jobs as jobs_routes
from fasttts.engine.base import TTSEngine
from fasttts.jobs import JobService, build_job_service
from fasttts.jobs.plan import segment_voice
from fasttts.models.registry import AutoEngine
from fasttts.params import GENDERS
from workers.dispatch import CeleryDispatcher

pytestmark = pytest.mark.asyncio(loop_scope="session")


def make_app(service: JobService) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(jobs_routes.router)
    app.state.settings = service.settings
    app.state.jobs = service
    return app


def client(service: JobService) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=make_app(service)), base_url="http://test")


async def finished(c: httpx.AsyncClient, service: JobService, job_id: str) -> dict:
    """The job's API view once its in-process run has ended (:func:`wait_final`'s event)."""
    await wait_final(service, job_id)
    return (await c.get(f"/v1/jobs/{job_id}")).json()


async def poll(c: httpx.AsyncClient, job_id: str, timeout: float = 60.0) -> dict:
    """The job's API view once it is final, polled: for a job only the reaper's next round (a timer,
    no event) sends on again."""
    for _ in range(int(timeout * 10)):
        body = (await c.get(f"/v1/jobs/{job_id}")).json()
        if body["status"] in ("succeeded", "failed", "cancelled"):
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish: {body}")


async def test_submit_poll_download_list_cancel_delete(embedded) -> None:
    async with client(embedded) as c:
        r = await c.post("/v1/jobs", json={"kind": "speak", "text": "Hello from the job API.", "output_format": "wav"}, headers={"Idempotency-Key": "abc"})
        assert r.status_code == 202 and r.headers["Location"].endswith(f"/v1/jobs/{r.json()['id']}")
        again = await c.post("/v1/jobs", json={"kind": "speak", "text": "Hello from the job API."}, headers={"Idempotency-Key": "abc"})
        assert again.json()["id"] == r.json()["id"] and again.headers["Idempotent-Replayed"] == "true"
        body = await finished(c, embedded, r.json()["id"])
        assert body["status"] == "succeeded" and body["progress"]["percent"] == 100.0
        audio = await c.get(body["results"]["audio.wav"].removeprefix("http://test"))
        assert audio.status_code == 200 and audio.content[:4] == b"RIFF" and len(audio.content) > 44 + 2 * 1000
        assert (await c.get("/v1/jobs", params={"status": "succeeded"})).json()["total"] == 1
        assert (await c.get("/v1/jobs", params={"status": "queued"})).json()["total"] == 0
        bad = await c.post("/v1/jobs", json={"kind": "speak", "text": "x", "output_format": "ogg"})
        assert bad.status_code in (400, 422)
        assert (await c.delete(f"/v1/jobs/{body['id']}")).status_code == 204
        assert (await c.get(f"/v1/jobs/{body['id']}")).status_code == 404


async def test_unknown_fields_are_refused_naming_them(embedded) -> None:
    async with client(embedded) as c:
        r = await c.post("/v1/jobs", json={"kind": "speak", "input": "OpenAI's field name.", "voice": {"name": "joe", "tone": "warm"}})
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert "input" in error["message"] and "voice.tone" in error["message"] and error["param"] == "input"
        form = await c.post(
            "/v1/jobs",
            data={"request": json.dumps({"kind": "audiobook", "format": "mp3"})},
            files={"file": ("book.txt", io.BytesIO(b"Some text."), "text/plain")},
        )
        assert form.status_code == 422 and form.json()["error"]["param"] == "format", form.text
        assert (await c.get("/v1/jobs")).json()["total"] == 0


async def test_a_job_meets_an_openai_speed_factor(embedded) -> None:
    """``voice.tempo`` (OpenAI's speed) runs through planning and the workers: the job's audio is
    time-stretched by it (Piper at temperature 0 speaks the same audio each time)."""
    lengths = {}
    async with client(embedded) as c:
        for tempo in (1.0, 2.0):
            r = await c.post(
                "/v1/jobs",
                json={
                    "kind": "speak",
                    "text": "Twice as fast, the same pitch.",
                    "output_format": "pcm",
                    "voice": {"name": "joe", "tempo": tempo},
                    "sampling": {"temperature": 0},
                },
            )
            assert r.status_code == 202, r.text
            body = await finished(c, embedded, r.json()["id"])
            assert body["status"] == "succeeded", body
            lengths[tempo] = len((await c.get(body["results"]["audio.pcm"].removeprefix("http://test"))).content) // 2
        bad = await c.post("/v1/jobs", json={"kind": "speak", "text": "x", "voice": {"tempo": 5}})
        assert bad.status_code == 422 and bad.json()["error"]["param"] == "voice.tempo", bad.text
    assert abs(lengths[2.0] / lengths[1.0] * 2.0 - 1.0) <= 0.05, lengths


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def spark(tiny_spark_dir) -> AsyncIterator[TTSEngine]:
    """The tiny random Spark: two voices (``female``, the default, and ``male``) to tell chapters apart."""
    engine = AutoEngine(tiny_spark_dir, backend="torch", llm_device="cpu", tokenizer_device="cpu", detokenizer_device="cpu")
    await engine.start()
    yield engine
    await engine.shutdown()


async def test_multipart_markdown_audiobook_with_chapter_voice(tmp_path, spark) -> None:
    md = b"# One\n\nFirst chapter text.\n\n# Two\n\nSecond chapter text.\n\n# Three\n\nThird chapter text.\n"
    req = {"kind": "audiobook", "output_format": "mp3", "chapter_voices": {"2": "male"}, "sampling": {"max_tokens": 80, "seed": 1}}
    service = build_job_service(job_settings(tmp_path), spark)
    await service.start()
    try:
        async with client(service) as c:
            r = await c.post("/v1/jobs", data={"request": json.dumps(req)}, files={"file": ("book.md", io.BytesIO(md), "text/markdown")})
            assert r.status_code == 202, r.text
            body = await finished(c, service, r.json()["id"])
        segments = await asyncio.to_thread(service.segments, body["id"])
        request = (await asyncio.to_thread(service.get, body["id"])).request
    finally:
        await service.stop()
    assert body["status"] == "succeeded" and body["chapters"] == ["One", "Two", "Three"]
    assert {"book.m4b", "chapters/001.mp3", "chapters/002.mp3", "chapters/003.mp3", "subtitles.srt", "subtitles.vtt"} <= set(body["results"])
    # the second chapter is spoken by its own voice, pinned once (in the job) as a male created voice; the others by the default
    assert sorted({(s.chapter, s.voice["name"]) for s in segments}) == [(0, "female"), (1, "male"), (2, "female")]
    states = {s.chapter: segment_voice(s.voice, request).state for s in segments}
    assert {c: state["gender"] for c, state in states.items()} == {0: GENDERS.index("female"), 1: GENDERS.index("male"), 2: GENDERS.index("female")}
    assert len(request["pinned_voices"]) == 2


async def test_broker_and_database_outages_answer_503(tmp_path, piper) -> None:
    from service_fixtures import free_port

    dead = free_port()
    down_settings = job_settings(tmp_path, broker_url=f"redis://127.0.0.1:{dead}/0")
    broker_down = build_job_service(down_settings, piper, CeleryDispatcher(down_settings))
    try:
        async with client(broker_down) as c:
            r = await c.post("/v1/jobs", json={"kind": "speak", "text": "Queue me."})
    finally:
        await broker_down.stop()
    assert r.status_code == 503 and int(r.headers["Retry-After"]) > 0
    db_down = build_job_service(job_settings(tmp_path, database_url=f"postgresql://postgres@127.0.0.1:{dead}/x"), piper)
    try:
        async with client(db_down) as c:
            for r in (await c.get("/v1/jobs"), await c.get("/v1/jobs/abc"), await c.post("/v1/jobs", json={"kind": "speak", "text": "Hi."})):
                assert r.status_code == 503 and "Retry-After" in r.headers, r.text
    finally:
        await db_down.stop()


async def test_s3_outage_answers_503_and_running_jobs_finish_after(tmp_path, piper, seaweed) -> None:
    from service_fixtures import Proxy

    proxy = Proxy(int(seaweed.endpoint.rsplit(":", 1)[1]))
    settings = job_settings(
        tmp_path,
        s3_bucket=seaweed.bucket,
        s3_endpoint_url=f"http://127.0.0.1:{proxy.port}",
        s3_prefix=f"{tmp_path.name}/",
        s3_access_key_id="k",
        s3_secret_access_key="s",
        segment_lease_s=1.0,
    )
    engine = SignallingEngine(piper)
    service = build_job_service(settings, engine)  # type: ignore[arg-type]
    await service.start()
    try:
        async with client(service) as c:
            text = " ".join(f"Part {i} of a job that outlives an outage." for i in range(10))
            r = await c.post("/v1/jobs", json={"kind": "speak", "text": text, "split": {"length_threshold": 8, "window_size": 8}})
            job_id = r.json()["id"]
            await asyncio.wait_for(engine.synthesised.wait(), 60)  # the job is running
            proxy.down()  # S3 goes away mid-job: the segment in hand cannot be stored
            down = await c.post("/v1/jobs", json={"kind": "speak", "text": "Not now."})
            assert down.status_code == 503 and "Retry-After" in down.headers
            await asyncio.wait_for(service.dispatcher.join(), 90)  # the run met the outage and paused
            during = (await c.get(f"/v1/jobs/{job_id}")).json()
            assert during["status"] == "running" and during["progress"]["segments_done"] < during["progress"]["segments_total"], during
            proxy.restore()  # back: the reaper re-dispatches and the job completes
            body = await poll(c, job_id, timeout=90)
        assert body["status"] == "succeeded", body
        segs = await asyncio.to_thread(service.segments, job_id)
        assert all(s.status == "done" for s in segs) and body["progress"]["segments_done"] == len(segs)
        assert body["results"]["audio.mp3"].startswith(seaweed.endpoint.replace(seaweed.endpoint.rsplit(":", 1)[1], str(proxy.port)))
    finally:
        await service.stop()
        proxy.close()
