"""Real ``fasttts worker`` processes on Redis, PostgreSQL and SeaweedFS with API apps built by the
same composition root: self-contained jobs (a voice made after the worker started, a --role_dir
voice, a clone job), API replicas sharing voices, and a pool process replaced after a SIGKILL
while the model takes longer to load than Celery's alive-timeout."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import psutil
import pytest
import worker_probe
from conftest import wait_final

from api.app import create_app
from fasttts.config import Settings
from fasttts.db import Job, Voice, close_sessions, engine_from_settings, session_factory, upgrade_to_head
from fasttts.jobs import JobSpec, build_job_service
from workers.dispatch import CeleryDispatcher

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.services, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SAMPLING = {"max_tokens": 60, "seed": 5}
SPLIT = {"length_threshold": 8, "window_size": 8}
SECRETS = {"FASTTTS_S3_ACCESS_KEY_ID": "test", "FASTTTS_S3_SECRET_ACCESS_KEY": "test"}


@pytest.fixture
def deployment(tmp_path, pg_url, seaweed) -> dict[str, str]:
    """Flags shared by the API apps and the worker: one database, broker queue and bucket prefix."""
    upgrade_to_head(pg_url)
    return {
        "database_url": pg_url,
        "broker_url": "redis://127.0.0.1:6379/0",
        "job_queue": f"fasttts-test-{uuid.uuid4().hex[:8]}",
        "s3_bucket": seaweed.bucket,
        "s3_endpoint_url": seaweed.endpoint,
        "s3_prefix": f"{tmp_path.name}/",
        "segment_lease_s": "3",
        "job_batch_size": "2",
        "data_dir": str(tmp_path),
        "auto_migrate": "false",
    }


def start_worker(flags: dict[str, str], log: Path, **env: str) -> subprocess.Popen[bytes]:
    """``fasttts worker`` with these flags (secrets from the environment, as in production),
    the probe of :mod:`worker_probe` loaded first."""
    args = [a for k, v in flags.items() for a in ([f"--{k}"] if v == "true" else [f"--no-{k}"] if v == "false" else [f"--{k}", v])]
    argv = ["worker", *args, "--without-mingle", "--without-gossip", "--loglevel", "WARNING"]
    code = f"import sys, worker_probe; from fasttts.cli import main; sys.exit(main({argv!r}))"
    path = os.pathsep.join([str(REPO), str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])
    with open(log, "ab") as out:  # the worker has its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=REPO,
            env=os.environ | SECRETS | env | {"PYTHONPATH": path},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def api_settings(flags: dict[str, str], **extra: object) -> Settings:
    return Settings(**flags, s3_access_key_id="test", s3_secret_access_key="test", **extra)  # type: ignore[arg-type]


@asynccontextmanager
async def replica(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """One API process (its own engine, built by the app's lifespan), as ``fasttts serve`` runs it."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        await app.state.loading
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver", timeout=60) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


async def finished(client: httpx.AsyncClient, job_id: str, timeout: float = 240.0) -> Job:
    return await wait_final(client.app.state.jobs, job_id, timeout=timeout)  # type: ignore[attr-defined]


def stored_globals(settings: Settings, name: str) -> list[int]:
    sessions = session_factory(engine_from_settings(settings))
    try:
        with sessions() as s:
            row = s.get(Voice, name)
            assert row is not None
            return list(row.state["global_ids"])
    finally:
        close_sessions(sessions)


def job_request(client: httpx.AsyncClient, job_id: str) -> dict:
    return client.app.state.jobs.get(job_id).request  # type: ignore[attr-defined]


def hum(seconds: float = 3.0, hz: float = 90.0) -> bytes:
    """A reference unlike speech (a low hum), so the tiny random encoder gives it other tokens."""
    import numpy as np

    from fasttts.audio.encode import encode_audio

    t = np.arange(int(16000 * seconds)) / 16000
    return encode_audio((0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32), 16000, "wav")


def count_encodes(client: httpx.AsyncClient) -> list[int]:
    """Count the reference encodes of a replica's engine (wraps its encoder entry point)."""
    engine = client.app.state.engine  # type: ignore[attr-defined]
    calls = [0]
    tokenize = engine.tokenize

    async def counting(audio: object) -> object:
        calls[0] += 1
        return await tokenize(audio)

    engine.tokenize = counting
    return calls


async def test_jobs_carry_their_voices_to_any_worker(deployment, tiny_spark_dir, piper_speech, tmp_path) -> None:
    speech, transcript = piper_speech
    roles = tmp_path / "roles"
    (roles / "narrator").mkdir(parents=True)
    (roles / "narrator" / "reference.wav").write_bytes(hum())
    probe = tmp_path / "probe.jsonl"
    flags = deployment | {"model_path": str(tiny_spark_dir)}
    worker = start_worker(flags, tmp_path / "worker.log", FASTTTS_TEST_PROBE=str(probe))
    try:
        settings = api_settings(flags, role_dir=str(roles))
        async with replica(settings) as api:
            # the worker builds its engine for this job, before any of the voices below exists
            warm = (await api.post("/v1/jobs", json={"kind": "speak", "text": "Warm up.", "sampling": SAMPLING})).json()
            assert (await finished(api, warm["id"])).status == "succeeded", (tmp_path / "worker.log").read_text()[-3000:]

            r = await api.post("/v1/audio/voices", data={"name": "alice", "reference_text": transcript}, files={"reference_audio_file": ("a.wav", speech)})
            assert r.status_code == 201, r.text
            alice, narrator = stored_globals(settings, "alice"), stored_globals(settings, "narrator")
            assert alice != narrator and len(alice) == 32

            unknown = await api.post("/v1/jobs", json={"kind": "speak", "text": "Nobody.", "voice": {"name": "nobody"}})
            assert unknown.status_code == 404 and "nobody" in unknown.text
            bad_role = await api.post("/v1/jobs", json={"kind": "audiobook", "text": "Chapter 1\nHi.", "chapter_voices": {"1": "ghost"}})
            assert bad_role.status_code == 404 and "ghost" in bad_role.text

            # every sentence unique across the jobs, so each prompt the worker built names its segment
            speak_text = " ".join(f"Alice reads about {w}." for w in ("apples", "bananas", "cherries", "dates"))
            book = (
                "Chapter 1\n"
                + " ".join(f"Alice opens a book on {w}." for w in ("falcons", "geese", "herons"))
                + "\n\nChapter 2\n"
                + " ".join(f"The narrator ends with {w}." for w in ("iguanas", "jackals", "koalas"))
            )
            role_text = " ".join(f"The narrator speaks of {w}." for w in ("lemons", "mangoes", "nectarines"))
            jobs = {}
            for name, body in {
                "speak": {"kind": "speak", "text": speak_text, "voice": {"name": "alice"}},
                "book": {"kind": "audiobook", "text": book, "voice": {"name": "narrator"}, "chapter_voices": {"1": "alice", "2": "narrator"}},
                "role": {"kind": "speak", "text": role_text, "voice": {"name": "narrator"}},
            }.items():
                r = await api.post("/v1/jobs", json=body | {"sampling": SAMPLING, "split": SPLIT, "output_format": "wav"})
                assert r.status_code == 202, r.text
                jobs[name] = r.json()["id"]
            # the voices go away after submit; the jobs keep what they resolved
            assert (await api.delete("/v1/audio/voices/alice")).status_code == 200
            assert (await api.delete("/v1/audio/voices/narrator")).status_code == 200
            assert (await api.get("/v1/audio/voices/alice")).status_code == 404

            encodes = count_encodes(api)
            clone_text = " ".join(f"A cloned voice likes {w}." for w in ("oranges", "papayas", "quinces", "raisins"))
            r = await api.post(
                "/v1/jobs",
                data={
                    "request": json.dumps(
                        {
                            "kind": "clone",
                            "text": clone_text,
                            "voice": {"reference_text": transcript},
                            "sampling": SAMPLING,
                            "split": SPLIT,
                            "output_format": "wav",
                        }
                    )
                },
                files={"reference_audio": ("ref.wav", io.BytesIO(speech))},
            )
            assert r.status_code == 202, r.text
            jobs["clone"] = r.json()["id"]
            assert encodes[0] == 1  # encoded once, at submit

            for job_id in jobs.values():
                job = await finished(api, job_id)
                assert job.status == "succeeded", (job.error, (tmp_path / "worker.log").read_text()[-3000:])
            segments = {name: api.app.state.jobs.segments(job_id) for name, job_id in jobs.items()}  # type: ignore[attr-defined]
            clone_state = next(iter(job_request(api, jobs["clone"])["pinned_voices"].values()))
            vocab = api.app.state.engine.vocab  # type: ignore[attr-defined]
    finally:
        stop(worker)

    records = worker_probe.read(str(probe))
    prompts = {r["text"]: r for r in records if r["event"] == "prompt"}
    assert len(prompts) == len({(r["text"], tuple(r["global_ids"])) for r in records if r["event"] == "prompt"})  # one voice per text
    assert not [r for r in records if r["event"] == "encode"]  # the worker never encodes a reference

    def used(segs, expected: list[int]) -> None:
        assert len(segs) >= 2
        for seg in segs:
            p = prompts[seg.text]
            assert p["global_ids"] == expected, seg.text
            tokens = [vocab.start_global, *(vocab.global0 + g for g in expected), vocab.end_global]
            assert any(p["prompt_ids"][i : i + len(tokens)] == tokens for i in range(len(p["prompt_ids"]))), seg.text

    used(segments["speak"], alice)
    used(segments["role"], narrator)
    used([s for s in segments["book"] if s.chapter == 0], alice)
    used([s for s in segments["book"] if s.chapter == 1], narrator)
    assert clone_state["kind"] == "clone"
    used(segments["clone"], clone_state["global_ids"])


async def test_api_replicas_share_voices(deployment, tiny_spark_dir, piper_speech) -> None:
    speech, _ = piper_speech
    settings = api_settings(deployment | {"model_path": str(tiny_spark_dir)})
    async with replica(settings) as a, replica(settings) as b:
        assert (await a.post("/v1/audio/voices", data={"name": "bob"}, files={"reference_audio_file": ("b.wav", speech)})).status_code == 201
        assert (await b.get("/v1/audio/voices/bob")).json()["kind"] == "clone"
        assert "bob" in [v["id"] for v in (await b.get("/v1/audio/voices")).json()["voices"]]
        # usable on the other replica: its engine resolves bob's tokens into a job at submit
        r = await b.post("/v1/jobs", json={"kind": "speak", "text": "Bob speaks.", "voice": {"name": "bob"}, "sampling": SAMPLING})
        assert r.status_code == 202, r.text
        pinned = list(job_request(b, r.json()["id"])["pinned_voices"].values())
        assert [p["global_ids"] for p in pinned] == [stored_globals(settings, "bob")]
        # one name, two replicas: the database refuses the second
        taken = await b.post("/v1/audio/voices", data={"name": "bob", "gender": "male"})
        assert taken.status_code == 409 and "'bob'" in taken.text
        # deleted on one, gone on the other
        assert (await b.delete("/v1/audio/voices/bob")).status_code == 200
        assert (await a.get("/v1/audio/voices/bob")).status_code == 404
        gone = await a.post("/v1/jobs", json={"kind": "speak", "text": "Bob again.", "voice": {"name": "bob"}})
        assert gone.status_code == 404 and "bob" in gone.text


async def test_a_replaced_pool_process_works_though_the_model_loads_slowly(deployment, piper, tmp_path) -> None:
    """Celery kills a new pool process that has not reported in within ~4 s; the engine (here
    made to take 6 s to load) is built by the process's first task, so a replacement reports in."""
    settings = api_settings(deployment)
    service = build_job_service(settings, piper, CeleryDispatcher(settings))
    await service.start()  # as the API does: the reaper sends back jobs whose worker died
    log = tmp_path / "worker.log"
    worker = start_worker(deployment, log, FASTTTS_TEST_SLOW_LOAD_S="6")
    try:
        text = " ".join(f"This is sentence number {i} of the first job." for i in range(8))
        first, _ = await service.submit(JobSpec(kind="speak", text=text, output_format="wav", split=SPLIT))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 120
        while (await asyncio.to_thread(service.get, first.id)).segments_done < 1:
            assert worker.poll() is None and loop.time() < deadline, log.read_text()[-3000:]
            await asyncio.sleep(0.1)
        (child,) = psutil.Process(worker.pid).children()
        child.send_signal(signal.SIGKILL)
        second, _ = await service.submit(JobSpec(kind="speak", text="The next job after the crash.", output_format="wav"))
        assert (await wait_final(service, second.id, timeout=120)).status == "succeeded", log.read_text()[-3000:]
        assert (await wait_final(service, first.id, timeout=120)).status == "succeeded", log.read_text()[-3000:]
        (replacement,) = psutil.Process(worker.pid).children()
        assert replacement.pid != child.pid
    finally:
        stop(worker)
        await service.stop()
