"""The HTTP layer on a tiny random Spark-TTS model (official layout, random weights): the
features Piper lacks — cloning, pitch, created voices, stored cloned voices — end to end.
Random weights speak noise, so the checks are on lengths, formats, determinism and errors."""

from __future__ import annotations

import json

import pytest
from api_fakes import decode, decode_pcm, tone
from conftest import running

from fasttts.config import Settings

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]

SHORT = {"max_tokens": 40, "seed": 3}  # random weights never stop on their own: keep requests short


@pytest.fixture(scope="session")
async def spark_engine(tmp_path_factory):
    from fasttts.models.registry import AutoEngine
    from fasttts.models.spark.random_model import write_random_spark

    root = write_random_spark(tmp_path_factory.mktemp("spark") / "tiny", size="tiny")
    engine = AutoEngine(Settings(model_path=str(root)))
    yield engine
    await engine.shutdown()


@pytest.fixture
async def spark(settings: Settings, spark_engine):
    async with running(settings, spark_engine) as client:
        yield client


async def test_speak_created_voices_with_pitch_and_speed(spark):
    body = {"name": "female", "text": "Hello there.", "pitch": "high", "speed": "low", "response_format": "wav", **SHORT}
    a = await spark.post("/speak", json=body)
    b = await spark.post("/speak", json=body)
    assert a.status_code == 200, a.text
    audio, rate = decode(a.content)
    assert rate == 16000 and len(audio) > 0
    assert a.content == b.content  # same seed, same request: same audio
    assert (await spark.get("/audio_roles")).json()["roles"][:2] == ["female", "male"]


async def test_clone_upload_and_stream(spark):
    files = {"reference_audio_file": ("ref.wav", tone(1.0), "audio/wav")}
    data = {"text": "Hello, world", "reference_text": "a tone", "stream": "true", "response_format": "pcm", "max_tokens": "40", "seed": "1"}
    r = await spark.post("/clone_voice", data=data, files=files)
    assert r.status_code == 200, r.text
    assert len(decode_pcm(r.content)) > 0


async def test_multi_speak_and_openai(spark):
    r = await spark.post("/multi_speak", json={"text": "<role:female> Hi! <role:male> Hello!", "response_format": "flac", **SHORT})
    assert r.status_code == 200 and len(decode(r.content)[0]) > 0
    r = await spark.post(
        "/v1/audio/speech", json={"model": "tts-1", "input": "Hi.", "voice": "alloy", "speed": 2.0, "pitch": "low", "response_format": "mp3", **SHORT}
    )
    assert r.status_code == 200 and len(decode(r.content)[0]) > 0


async def test_cloned_voice_stored_and_reloaded_without_encoding(settings: Settings, spark_engine, monkeypatch):
    async with running(settings, spark_engine) as client:
        r = await client.post(
            "/v1/audio/voices", data={"name": "alice", "reference_text": "a tone"}, files={"reference_audio_file": ("ref.wav", tone(1.0), "audio/wav")}
        )
        assert r.status_code == 201, r.text
        before = await client.post("/speak", json={"name": "alice", "text": "Same words.", "response_format": "pcm", **SHORT})
    spark_engine.remove_voice("alice")  # as if the process restarted with a fresh engine

    async def no_encoding(*args, **kwargs):
        raise AssertionError("a stored voice must not be encoded again")

    monkeypatch.setattr(spark_engine, "add_voice", no_encoding)
    async with running(settings, spark_engine) as client:
        assert "alice" in (await client.get("/audio_roles")).json()["roles"]
        after = await client.post("/speak", json={"name": "alice", "text": "Same words.", "response_format": "pcm", **SHORT})
        assert (await client.delete("/v1/audio/voices/alice")).status_code == 200
    assert before.status_code == after.status_code == 200 and before.content == after.content
    assert "alice" not in spark_engine.list_voices()


async def test_metrics_answer_with_the_spark_batchers(spark):
    """The Spark engine's codec micro-batchers are read by /metrics (issue #16: it answered 500)."""
    assert (await spark.post("/speak", json={"name": "female", "text": "Hi.", "response_format": "wav", **SHORT})).status_code == 200
    r = await spark.get("/metrics")
    assert r.status_code == 200, r.text
    lines = [line for line in r.text.splitlines() if line.startswith("fasttts_batch_occupancy{")]
    assert lines and any(float(line.rsplit(" ", 1)[1]) >= 1.0 for line in lines), r.text


def _error(r) -> tuple[str, str]:
    body = r.json()
    err = body.get("error") or body  # /v1 routes answer OpenAI's error object, native ones {"detail", "param"}
    return err.get("param"), err.get("message") or err.get("detail")


async def test_max_tokens_too_small_for_audio_is_a_400_naming_the_minimum_before_any_work(spark, spark_engine, monkeypatch):
    """A created Spark voice writes 39 tokens (acoustic values, 32 globals) before its first audio
    token: max_tokens 39 cannot give audio. Every route refuses it up front, naming the minimum,
    and nothing runs (no generation, no reference encoded, no job stored)."""

    async def no_work(*args, **kwargs):
        raise AssertionError("nothing may run for a request that cannot produce audio")

    monkeypatch.setattr(spark_engine.backend, "generate", no_work)
    monkeypatch.setattr(spark_engine, "tokenize", no_work)
    requests_before = spark_engine.stats.requests
    speak = {"name": "female", "text": "Hello there.", "response_format": "wav", "max_tokens": 39}
    calls = [
        spark.post("/speak", json=speak),
        spark.post("/speak", json={**speak, "stream": True}),
        spark.post("/multi_speak", json={"text": "<role:female> Hi! <role:male> Hello!", "max_tokens": 1}),
        spark.post("/v1/audio/speech", json={"model": "tts-1", "input": "Hi.", "voice": "female", "max_tokens": 32}),
        spark.post("/v1/jobs", json={"kind": "speak", "text": "Hello there.", "voice": {"name": "male"}, "sampling": {"max_tokens": 1}}),
    ]
    for call in calls:
        r = await call
        assert r.status_code == 400, r.text
        param, message = _error(r)
        assert param == "max_tokens" and "at least 40" in message, r.json()
    # a clone without a transcript needs <|start_semantic_token|> and one semantic token (2)
    files = {"reference_audio_file": ("ref.wav", tone(1.0), "audio/wav")}
    r = await spark.post("/clone_voice", data={"text": "Hello", "max_tokens": "1"}, files=files)
    assert r.status_code == 400 and _error(r)[0] == "max_tokens" and "at least 2" in _error(r)[1], r.text
    job = {"kind": "clone", "text": "Hello", "sampling": {"max_tokens": 1}}
    r = await spark.post("/v1/jobs", data={"request": json.dumps(job)}, files={"reference_audio": ("ref.wav", tone(1.0), "audio/wav")})
    assert r.status_code == 400 and "at least 2" in _error(r)[1], r.text
    assert spark_engine.stats.requests == requests_before
    assert (await spark.get("/v1/jobs")).json()["total"] == 0


async def test_max_tokens_at_the_minimum_gives_audio(spark):
    r = await spark.post("/speak", json={"name": "female", "text": "Hello there.", "response_format": "pcm", "max_tokens": 40, "seed": 1})
    assert r.status_code == 200 and len(decode_pcm(r.content)) == 320  # the one semantic token
