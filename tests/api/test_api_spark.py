"""The HTTP layer on a tiny random Spark-TTS model (official layout, random weights): the
features Piper lacks — cloning, pitch, created voices, stored cloned voices — end to end.
Random weights speak noise, so the checks are on lengths, formats, determinism and errors."""

from __future__ import annotations

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
    r = await spark.post("/v1/audio/speech", json={"model": "tts-1", "input": "Hi.", "voice": "alloy", "speed": 2.0, "pitch": "low",
                                                     "response_format": "mp3", **SHORT})
    assert r.status_code == 200 and len(decode(r.content)[0]) > 0


async def test_cloned_voice_stored_and_reloaded_without_encoding(settings: Settings, spark_engine, monkeypatch):
    async with running(settings, spark_engine) as client:
        r = await client.post("/v1/audio/voices", data={"name": "alice", "reference_text": "a tone"}, files={"reference_audio_file": ("ref.wav", tone(1.0), "audio/wav")})
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
