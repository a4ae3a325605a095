"""What popular OpenAI-TTS clients rely on, on each model (Piper, a tiny random Spark, a tiny random
Orpheus): ``pcm`` from /v1/audio/speech is OpenAI's 24 kHz whatever the model's rate, and ``speed``
0.25–4.0 changes the duration by exactly that factor on every model, streamed or not.

Random weights speak noise, but with a fixed seed and a token cap they speak the same tokens at
every speed (and Piper at temperature 0 the same audio), so sample counts compare across requests
and duration ratios measure the speed handling alone."""

from __future__ import annotations

import struct

import pytest
from conftest import running

from fasttts.config import Settings
from fasttts.models.orpheus.prompt import FRAME_CODES
from fasttts.params import LEVEL_TEMPO

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]

OPENAI_PCM_RATE = 24000
SEEDED = {"seed": 5}
CAPS = {"piper": {"temperature": 0}, "spark": {"max_tokens": 70}, "orpheus": {"max_tokens": 12 * FRAME_CODES}}
"""Per model: request extras that make repeated requests speak the same audio (Piper's VITS noise
off; random LLMs never stop on their own, so a token cap fixes their length)."""


@pytest.fixture(scope="session")
async def model_engines(tmp_path_factory, tiny_spark_dir, piper_engine):
    from fasttts.models.orpheus.random_model import write_random_orpheus
    from fasttts.models.registry import AutoEngine

    orpheus_dir = write_random_orpheus(tmp_path_factory.mktemp("orpheus") / "tiny", size="tiny", seed=3)
    engines = {
        "piper": piper_engine,
        "spark": AutoEngine(Settings(model_path=str(tiny_spark_dir))),
        "orpheus": AutoEngine(Settings(model_path=str(orpheus_dir), detokenizer_device="cpu", llm_device="cpu")),
    }
    yield engines
    for name in ("spark", "orpheus"):
        await engines[name].shutdown()


@pytest.fixture(params=["piper", "spark", "orpheus"])
async def model(request, settings: Settings, model_engines):
    async with running(settings, model_engines[request.param]) as client:
        yield request.param, client


def wav_samples(data: bytes) -> tuple[int, int]:
    """(sample rate, sample count) of a 16-bit mono WAV as the header states them."""
    rate = struct.unpack_from("<I", data, 24)[0]
    assert struct.unpack_from("<H", data, 34)[0] == 16 and data[36:40] == b"data"
    return rate, (len(data) - 44) // 2


async def speech(client, name: str, **fields) -> bytes:
    body = {"model": "tts-1", "input": "Hello there, this is a test.", "voice": "alloy", **SEEDED, **CAPS[name], **fields}
    r = await client.post("/v1/audio/speech", json=body)
    assert r.status_code == 200, r.text
    return r.content


async def test_pcm_is_24_khz_on_every_model(model):
    name, client = model
    wav = await speech(client, name, response_format="wav", stream=False)
    model_rate, n = wav_samples(wav)
    assert model_rate == {"piper": 22050, "spark": 16000, "orpheus": 24000}[name]  # WAV keeps the model's rate, and says so
    expected = n * OPENAI_PCM_RATE / model_rate
    for stream in (False, True):
        r = await client.post(
            "/v1/audio/speech",
            json={
                "model": "tts-1",
                "input": "Hello there, this is a test.",
                "voice": "alloy",
                "response_format": "pcm",
                "stream": stream,
                **SEEDED,
                **CAPS[name],
            },
        )
        assert r.status_code == 200 and r.headers["x-sample-rate"] == str(OPENAI_PCM_RATE)
        assert abs(len(r.content) / 2 - expected) <= 1, (name, stream, len(r.content) / 2, expected)
    streamed, whole = await speech(client, name, response_format="pcm"), await speech(client, name, response_format="pcm", stream=False)
    assert len(streamed) == len(whole)
    if name == "piper":  # its audio is the same whether streamed or not: so is the resampled stream
        assert streamed == whole


async def test_sample_rate_extra_and_native_routes(model):
    name, client = model
    model_rate, n = wav_samples(await speech(client, name, response_format="wav", stream=False))
    pcm16 = await speech(client, name, response_format="pcm", sample_rate=16000, stream=False)
    assert abs(len(pcm16) / 2 - n * 16000 / model_rate) <= 1
    rate, n48 = wav_samples(await speech(client, name, response_format="wav", sample_rate=48000, stream=False))
    assert rate == 48000 and abs(n48 - n * 48000 / model_rate) <= 1
    voice = (await client.get("/audio_roles")).json()["roles"][0]
    native = await client.post("/speak", json={"name": voice, "text": "Hello there.", "response_format": "pcm", **SEEDED, **CAPS[name]})
    assert native.status_code == 200 and native.headers["x-sample-rate"] == str(model_rate)
    bad = await client.post("/v1/audio/speech", json={"model": "tts-1", "input": "x", "voice": "alloy", "sample_rate": 1000})
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "sample_rate"


@pytest.mark.parametrize("stream", [False, True])
async def test_openai_speed_changes_duration_by_its_factor_on_every_model(model, stream):
    name, client = model
    _, normal = wav_samples(await speech(client, name, response_format="wav", stream=False))
    for speed in (0.5, 2.0):
        _, n = wav_samples(await speech(client, name, response_format="wav", speed=speed, stream=stream))
        assert abs(n / normal * speed - 1.0) <= 0.05, (name, speed, n / normal)


async def test_native_speed_levels_on_orpheus_are_time_stretched(settings: Settings, model_engines):
    """Orpheus has no speed control of its own: the native ``speed`` field is met by stretching."""
    body = {"name": "tara", "text": "Hello there.", "response_format": "wav", **SEEDED, **CAPS["orpheus"]}
    async with running(settings, model_engines["orpheus"]) as client:
        _, normal = wav_samples((await client.post("/speak", json=body)).content)
        for level in ("very_low", "very_high"):
            r = await client.post("/speak", json={**body, "speed": level})
            assert r.status_code == 200, r.text
            assert abs(wav_samples(r.content)[1] / normal * LEVEL_TEMPO[level] - 1.0) <= 0.05
