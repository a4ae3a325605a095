"""OpenAI-compatible API over ASGI: /v1/audio/speech fields, SSE, models, voices, error objects."""

from __future__ import annotations

import base64
import json

import pytest
from api_fakes import FakeEngine, decode, decode_pcm
from conftest import running

from fasttts.config import Settings
from fasttts.params import SamplingParams, SplitParams, VoiceParams

FORMATS = ["mp3", "opus", "aac", "flac", "wav", "pcm"]

# The app's background tasks (model loading, the job runner) are created by async fixtures on the
# session loop (pyproject: asyncio_default_fixture_loop_scope), so the tests must run on it too.
pytestmark = pytest.mark.asyncio(loop_scope="session")


def _sse(text: str) -> list[dict]:
    return [json.loads(line[len("data: ") :]) for line in text.splitlines() if line.startswith("data: ")]


def _error(r, status: int, param: str | None = None) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    if param is not None:
        assert err["param"] == param, err
    return err


@pytest.mark.parametrize("fmt", FORMATS)
async def test_speech_every_format(fake_client, fmt):
    body = {"model": "tts-1", "input": "Hello from the test", "voice": "alloy", "response_format": fmt}
    for stream in (True, False):
        r = await fake_client.post("/v1/audio/speech", json={**body, "stream": stream})
        assert r.status_code == 200, r.text
        audio = decode_pcm(r.content) if fmt == "pcm" else decode(r.content)[0]
        rate = int(r.headers["x-sample-rate"])
        assert abs(len(audio) / rate - 4 * 0.1) < 0.06  # 4 words x 0.1 s from the fake engine
        assert ("content-length" in r.headers) == (not stream)


async def test_models_accepted_and_listed(fake_client):
    for model in ("tts-1", "tts-1-hd", "gpt-4o-mini-tts", "fasttts-test"):
        r = await fake_client.post("/v1/audio/speech", json={"model": model, "input": "hi", "voice": "female", "response_format": "wav"})
        assert r.status_code == 200, model
    err = _error(await fake_client.post("/v1/audio/speech", json={"model": "whisper-1", "input": "hi", "voice": "female"}), 404, "model")
    assert err["code"] == "model_not_found"
    models = (await fake_client.get("/v1/models")).json()
    assert models["object"] == "list" and models["data"][0]["id"] == "fasttts-test"
    assert {m["id"] for m in models["data"]} >= {"tts-1", "tts-1-hd", "gpt-4o-mini-tts"}


async def test_open_webui_model_list_and_model_lookup(fake_client):
    audio_models = (await fake_client.get("/v1/audio/models")).json()
    assert set(audio_models) == {"models"} and all(set(m) == {"id"} for m in audio_models["models"])
    listed = [m["id"] for m in (await fake_client.get("/v1/models")).json()["data"]]
    assert [m["id"] for m in audio_models["models"]] == listed
    for model in listed:
        card = (await fake_client.get(f"/v1/models/{model}")).json()
        assert card["id"] == model and card["object"] == "model" and isinstance(card["created"], int)
    err = _error(await fake_client.get("/v1/models/whisper-1"), 404, "model")
    assert "whisper-1" in err["message"]
    voices = (await fake_client.get("/v1/audio/voices")).json()
    assert set(voices) == {"voices"} and voices["voices"] and all(set(v) == {"id", "name"} for v in voices["voices"])


async def test_voice_forms_and_openai_names(fake_client):
    base = {"model": "tts-1", "input": "one two", "response_format": "pcm"}
    as_object = await fake_client.post("/v1/audio/speech", json={**base, "voice": {"id": "male"}})
    as_name = await fake_client.post("/v1/audio/speech", json={**base, "voice": "male"})
    assert as_object.content == as_name.content
    alloy = await fake_client.post("/v1/audio/speech", json={**base, "voice": "alloy"})  # alloy -> female by default
    female = await fake_client.post("/v1/audio/speech", json={**base, "voice": "female"})
    assert alloy.content == female.content
    for name in ("ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse", "marin", "cedar"):
        assert (await fake_client.post("/v1/audio/speech", json={**base, "voice": name})).status_code == 200, name
    _error(await fake_client.post("/v1/audio/speech", json={**base, "voice": "nobody"}), 404, "voice")


async def test_openai_voice_map_override(settings: Settings):
    async with running(settings.model_copy(update={"openai_voice_map": {"alloy": "male"}}), FakeEngine()) as client:
        base = {"model": "tts-1", "input": "one two", "response_format": "pcm"}
        alloy = await client.post("/v1/audio/speech", json={**base, "voice": "alloy"})
        male = await client.post("/v1/audio/speech", json={**base, "voice": "male"})
    assert alloy.content == male.content


async def test_piper_maps_openai_voices_and_speed(piper_client):
    base = {"model": "tts-1", "input": "One two three four five.", "voice": "nova", "response_format": "wav"}
    normal = decode((await piper_client.post("/v1/audio/speech", json=base)).content)[0]
    fast = decode((await piper_client.post("/v1/audio/speech", json={**base, "speed": 4.0})).content)[0]
    assert len(fast) < 0.85 * len(normal)
    _error(await piper_client.post("/v1/audio/speech", json={**base, "pitch": "high"}), 400, "pitch")
    voices = (await piper_client.get("/v1/audio/voices")).json()
    assert voices == {"voices": [{"id": "joe", "name": "joe"}]}


@pytest.mark.parametrize(
    ("field", "value"),
    [("speed", 5.0), ("speed", 0.1), ("response_format", "ogg"), ("stream_format", "ws"), ("input", ""), ("voice", 3), ("temperature", 20), ("top_p", 0)],
)
async def test_validation_uses_openai_error_object(fake_client, field, value):
    body = {"model": "tts-1", "input": "hi", "voice": "alloy", field: value}
    err = _error(await fake_client.post("/v1/audio/speech", json=body), 422)
    assert err["param"].split(".")[0] == field and err["type"] == "invalid_request_error"


async def test_input_cap_and_missing_fields(settings: Settings):
    async with running(settings.model_copy(update={"max_input_chars": 10}), FakeEngine()) as client:
        _error(await client.post("/v1/audio/speech", json={"model": "tts-1", "input": "x" * 11, "voice": "alloy"}), 422, "input")
        _error(await client.post("/v1/audio/speech", json={"model": "tts-1", "voice": "alloy"}), 422, "input")
        _error(await client.post("/v1/audio/speech", content=b"{not json", headers={"content-type": "application/json"}), 422)
        _error(await client.get("/v1/no/such/route"), 404)


async def test_extras_and_instructions_reach_the_engine(settings: Settings):
    text = "Calm words. Spoken slowly. By a quiet narrator."
    body = {
        "model": "gpt-4o-mini-tts",
        "input": text,
        "voice": "female",
        "instructions": "Speak calmly.",
        "pitch": "low",
        "temperature": 0.5,
        "top_k": 10,
        "top_p": 0.8,
        "repetition_penalty": 1.2,
        "max_tokens": 300,
        "length_threshold": 3,
        "window_size": 3,
        "seed": 7,
        "response_format": "wav",
        "speed": 0.5,
    }
    engine = FakeEngine()
    async with running(settings, engine) as client:
        r = await client.post("/v1/audio/speech", json=body)
    assert r.status_code == 200 and decode(r.content)[0].size > 0
    assert engine.requested_voices == [VoiceParams(name="female", pitch="low", tempo=0.5, instructions="Speak calmly.")]
    segments = engine.segments(text, engine.requested_voices[0], SplitParams(3, 3))
    assert len(segments) > 1 and [t for t, _ in engine.spoken] == [s.text for s in segments]  # split by 3 tokens, not 50
    expected = SamplingParams(temperature=0.5, top_k=10, top_p=0.8, repetition_penalty=1.2, max_tokens=300)
    assert [sampling for _, sampling in engine.spoken] == [expected.with_seed(7 + i) for i in range(len(segments))]  # a seed per segment


@pytest.mark.parametrize("fmt", ["pcm", "mp3", "wav"])
async def test_sse_deltas_then_done(fake_client, fmt):
    body = {"model": "tts-1", "input": "four words right here", "voice": "alloy", "response_format": fmt, "stream_format": "sse"}
    r = await fake_client.post("/v1/audio/speech", json=body)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = _sse(r.text)
    deltas, done = events[:-1], events[-1]
    assert deltas and all(e["type"] == "speech.audio.delta" for e in deltas)
    assert done["type"] == "speech.audio.done" and done["usage"]["input_tokens"] == 4
    assert abs(done["usage"]["audio_seconds"] - 0.4) < 1e-3
    audio = b"".join(base64.b64decode(e["audio"]) for e in deltas)
    samples = decode_pcm(audio) if fmt == "pcm" else decode(audio)[0]
    assert abs(len(samples) / int(r.headers["x-sample-rate"]) - 0.4) < 0.06


async def test_sse_error_event_after_audio_began(fake_client):
    body = {"model": "tts-1", "input": "FAILMIDWAY now", "voice": "alloy", "response_format": "pcm", "stream_format": "sse"}
    events = _sse((await fake_client.post("/v1/audio/speech", json=body)).text)
    assert events[0]["type"] == "speech.audio.delta"
    assert events[-1]["type"] == "error" and "FAILMIDWAY" in events[-1]["error"]["message"]
    assert not any(e["type"] == "speech.audio.done" for e in events)
    assert fake_client.app.state.limiter.in_flight == 0


async def test_errors_before_audio_keep_their_status_on_v1(fake_client):
    err = _error(await fake_client.post("/v1/audio/speech", json={"model": "tts-1", "input": "FAILNOW", "voice": "alloy", "stream_format": "sse"}), 500)
    assert err["type"] == "server_error" and "FAILNOW" in err["message"]


def sdk_speech_fields() -> set[str]:
    """Every field the installed ``openai`` package can send to ``audio.speech.create``."""
    from openai.types.audio.speech_create_params import SpeechCreateParams

    return set(SpeechCreateParams.__annotations__)


async def test_every_sdk_speech_field_is_a_field_of_ours():
    """A field a newer SDK adds must be decided on (handled, or documented as ignored), not
    silently dropped by ``extra="ignore"``: this fails until it is added to the request model."""
    from api.openai.protocol import OpenAISpeechRequest

    assert sdk_speech_fields() <= set(OpenAISpeechRequest.model_fields)


async def test_the_official_client_sending_every_sdk_field_is_served(settings: Settings):
    """The installed SDK itself, with a value for each of its fields, over ASGI; each one's effect
    is checked (the voice as ``{"id": ...}``, speed as the tempo, instructions, SSE in WAV)."""
    import httpx2
    import openai

    sent = {
        "model": "gpt-4o-mini-tts",
        "input": "Every field at once.",
        "voice": {"id": "female"},
        "instructions": "Whisper.",
        "response_format": "wav",
        "speed": 2.0,
        "stream_format": "sse",
    }
    assert set(sent) == sdk_speech_fields()
    engine = FakeEngine()
    async with running(settings, engine) as client:
        transport = httpx2.ASGITransport(app=client.app)  # type: ignore[attr-defined]
        async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as http:
            sdk = openai.AsyncOpenAI(base_url="http://testserver/v1", api_key="unused", http_client=http, max_retries=0)
            reply = await sdk.audio.speech.create(**sent)  # type: ignore[arg-type]
    assert reply.response.headers["content-type"].startswith("text/event-stream")
    events = _sse(reply.text)
    assert events[-1]["type"] == "speech.audio.done"
    assert decode(b"".join(base64.b64decode(e["audio"]) for e in events[:-1]))[0].size > 0
    assert engine.requested_voices == [VoiceParams(name="female", tempo=2.0, instructions="Whisper.")]
