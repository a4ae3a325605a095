"""Native endpoints of the server guide (§4) over ASGI: every field, format and error code."""

from __future__ import annotations

import asyncio
import base64
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest
from api_fakes import FakeEngine, decode, decode_pcm, tone
from conftest import running

from fasttts.config import Settings
from fasttts.params import SamplingParams, SplitParams

FORMATS = ["mp3", "opus", "aac", "flac", "wav", "pcm"]
GUIDE_SPEAK = {  # the guide's §4.2 body, with a voice the model has
    "name": "joe",
    "text": "Text to synthesize",
    "pitch": "moderate",
    "speed": "moderate",
    "temperature": 0.9,
    "top_k": 50,
    "top_p": 0.95,
    "repetition_penalty": 1.0,
    "max_tokens": 4096,
    "length_threshold": 50,
    "window_size": 50,
    "stream": False,
    "response_format": "mp3",
}
GUIDE_MULTI = {  # the guide's §4.3 body, verbatim
    "text": "<role:female> Hello! <role:male> I'm good, thank you!",
    "temperature": 0.8,
    "top_k": 50,
    "top_p": 0.95,
    "repetition_penalty": 1.0,
    "max_tokens": 4096,
    "length_threshold": 50,
    "window_size": 50,
    "stream": True,
    "response_format": "wav",
}

# The app's background tasks (model loading, the job runner) are created by async fixtures on the
# session loop (pyproject: asyncio_default_fixture_loop_scope), so the tests must run on it too.
pytestmark = pytest.mark.asyncio(loop_scope="session")


def _seconds(data: bytes, fmt: str, rate: int) -> float:
    if fmt == "pcm":
        return len(decode_pcm(data)) / rate
    audio, sr = decode(data)
    return len(audio) / sr


@pytest.mark.parametrize("fmt", FORMATS)
async def test_speak_piper_every_format_is_a_complete_file(piper_client, fmt):
    r = await piper_client.post("/speak", json={**GUIDE_SPEAK, "response_format": fmt, "text": "Hello there."})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(
        {"mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac", "flac": "audio/flac", "wav": "audio/wav", "pcm": "audio/pcm"}[fmt]
    )
    assert int(r.headers["content-length"]) == len(r.content)
    assert r.headers["content-disposition"] == f'attachment; filename="speech.{fmt}"'
    assert r.headers["x-request-id"]
    assert 0.5 < _seconds(r.content, fmt, int(r.headers["x-sample-rate"])) < 10


async def test_speak_guide_body_and_streaming_match(piper_client):
    whole = await piper_client.post("/speak", json={**GUIDE_SPEAK, "response_format": "wav"})
    streamed = await piper_client.post("/speak", json={**GUIDE_SPEAK, "response_format": "wav", "stream": True})
    assert whole.status_code == streamed.status_code == 200
    assert "content-length" in whole.headers and "content-length" not in streamed.headers
    a, _ = decode(whole.content)
    b, _ = decode(streamed.content)
    assert abs(len(a) - len(b)) <= 0.25 * len(a)  # same text and voice; Piper's duration noise is unseeded


async def test_v1_mirrors_native_routes(piper_client):
    r = await piper_client.post("/v1/speak", json={**GUIDE_SPEAK, "response_format": "flac"})
    assert r.status_code == 200 and decode(r.content)[0].size > 0
    for path in ("/audio_roles", "/v1/audio_roles"):
        roles = (await piper_client.get(path)).json()
        assert roles == {"success": True, "roles": ["joe"]}


async def test_speed_levels_change_duration(piper_client):
    body = {**GUIDE_SPEAK, "response_format": "wav", "text": "One two three four five six seven."}
    slow = decode((await piper_client.post("/speak", json={**body, "speed": "very_low"})).content)[0]
    fast = decode((await piper_client.post("/speak", json={**body, "speed": "very_high"})).content)[0]
    assert len(slow) > 1.3 * len(fast)


async def test_unsupported_features_are_400_naming_the_field(piper_client):
    r = await piper_client.post("/speak", json={**GUIDE_SPEAK, "pitch": "high"})
    assert r.status_code == 400 and r.json()["param"] == "pitch"
    r = await piper_client.post("/clone_voice", data={"text": "hi"}, files={"reference_audio_file": ("ref.wav", tone(), "audio/wav")})
    assert r.status_code == 400 and r.json()["param"] == "reference_audio"


async def test_unknown_voice_is_404(piper_client):
    r = await piper_client.post("/speak", json={**GUIDE_SPEAK, "name": "nobody"})
    assert r.status_code == 404 and "nobody" in r.json()["detail"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("speed", "fast"),
        ("pitch", 3),
        ("top_p", 1.5),
        ("temperature", -1),
        ("top_k", -2),
        ("max_tokens", 0),
        ("repetition_penalty", 0),
        ("length_threshold", 0),
        ("window_size", 0),
        ("response_format", "ogg"),
        ("stream", "maybe"),
        ("text", ""),
    ],
)
async def test_validation_422_names_the_field(piper_client, field, value):
    r = await piper_client.post("/speak", json={**GUIDE_SPEAK, field: value})
    assert r.status_code == 422
    assert any(e["loc"][-1] == field for e in r.json()["detail"]), r.json()


async def test_input_length_cap(settings: Settings, piper_engine):
    async with running(settings.model_copy(update={"max_input_chars": 20}), piper_engine) as client:
        r = await client.post("/speak", json={**GUIDE_SPEAK, "text": "x " * 30})
    assert r.status_code == 422 and r.json()["param"] == "text"


async def test_multi_speak_guide_body(fake_client):
    r = await fake_client.post("/multi_speak", json=GUIDE_MULTI)
    assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
    audio, rate = decode(r.content)
    assert rate == 16000 and len(audio) > 1600
    spectrum = np.abs(np.fft.rfft(audio))
    freqs = np.fft.rfftfreq(len(audio), 1 / rate)
    peaks = {round(f) for f in freqs[np.argsort(spectrum)[-40:]]}
    assert any(abs(p - 220) < 10 for p in peaks) and any(abs(p - 110) < 10 for p in peaks)  # both speakers
    r = await fake_client.post("/multi_speak", json={**GUIDE_MULTI, "text": "<role:ghost> boo"})
    assert r.status_code == 404


async def test_clone_upload_with_every_field(settings: Settings):
    text = "Hello, world. A second sentence. And a third one here."
    data = {
        "text": text,
        "reference_text": "a tone",
        "pitch": "high",
        "speed": "low",
        "temperature": "0.7",
        "top_k": "20",
        "top_p": "0.9",
        "repetition_penalty": "1.1",
        "max_tokens": "500",
        "length_threshold": "4",
        "window_size": "4",
        "seed": "3",
        "stream": "false",
        "response_format": "flac",
    }
    engine = FakeEngine()
    async with running(settings, engine) as client:
        r = await client.post("/clone_voice", data=data, files={"reference_audio_file": ("ref.wav", tone(), "audio/wav")})
        assert r.status_code == 200, r.text
        assert r.headers["content-disposition"] == 'attachment; filename="clone.flac"'
        assert decode(r.content)[0].size > 0
        [voice] = engine.requested_voices
        assert (voice.reference_audio, voice.reference_text, voice.pitch, voice.speed) == (tone(), "a tone", "high", "low")
        segments = engine.segments(text, voice, SplitParams(4, 4))
        assert len(segments) > 1 and [t for t, _ in engine.spoken] == [s.text for s in segments]  # split by 4 tokens, not 50
        expected = SamplingParams(temperature=0.7, top_k=20, top_p=0.9, repetition_penalty=1.1, max_tokens=500)
        assert [sampling for _, sampling in engine.spoken] == [expected.with_seed(3 + i) for i in range(len(segments))]
        r = await client.post("/clone_voice", data={**data, "top_p": "7"}, files={"reference_audio_file": ("ref.wav", tone(), "audio/wav")})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "top_p"


async def test_clone_base64_and_stream(fake_client):
    b64 = base64.b64encode(tone(0.5, fmt="mp3")).decode()
    for ref in (b64, f"data:audio/mpeg;base64,{b64}"):
        r = await fake_client.post("/clone_voice", data={"text": "Hi there", "reference_audio": ref, "stream": "true", "response_format": "pcm"})
        assert r.status_code == 200 and len(decode_pcm(r.content)) > 0
    r = await fake_client.post("/clone_voice", data={"text": "Hi", "reference_audio": "not base64 !!"})
    assert r.status_code == 422 and r.json()["param"] == "reference_audio"
    r = await fake_client.post("/clone_voice", data={"text": "Hi"})
    assert r.status_code == 422 and r.json()["param"] == "reference_audio"


async def test_clone_reference_errors(settings: Settings):
    async with running(settings.model_copy(update={"max_reference_seconds": 1.0, "max_upload_bytes": 200_000}), FakeEngine()) as client:
        garbage = await client.post(
            "/clone_voice", data={"text": "Hi"}, files={"reference_audio_file": ("ref.wav", b"RIFF not audio at all" * 10, "audio/wav")}
        )
        too_long = await client.post("/clone_voice", data={"text": "Hi"}, files={"reference_audio_file": ("ref.wav", tone(3.0), "audio/wav")})
        too_big = await client.post("/clone_voice", data={"text": "Hi"}, files={"reference_audio_file": ("ref.wav", b"\0" * 300_000, "audio/wav")})
    assert garbage.status_code == 415 and garbage.json()["param"] == "reference_audio_file"
    assert too_long.status_code == 413 and too_big.status_code == 413


@pytest.fixture
def file_server(tmp_path: Path):
    (tmp_path / "ref.wav").write_bytes(tone(0.5))
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_clone_from_url_private_refused_unless_allowed(settings: Settings, file_server: str):
    async with running(settings, FakeEngine()) as client:
        for url in (f"{file_server}/ref.wav", "file:///etc/passwd", "ftp://example.com/a.wav"):
            r = await client.post("/clone_voice", data={"text": "Hi", "reference_audio": url})
            assert r.status_code == 422 and r.json()["param"] == "reference_audio", url
    async with running(settings.model_copy(update={"allow_private_urls": True}), FakeEngine()) as client:
        ok = await client.post("/clone_voice", data={"text": "Hi", "reference_audio": f"{file_server}/ref.wav", "response_format": "wav"})
        missing = await client.post("/clone_voice", data={"text": "Hi", "reference_audio": f"{file_server}/nothing.wav"})
    assert ok.status_code == 200 and decode(ok.content)[0].size > 0
    assert missing.status_code == 422 and "404" in missing.json()["detail"]


async def test_generation_error_is_500_with_message(fake_client):
    r = await fake_client.post("/speak", json={"name": "female", "text": "FAILNOW please"})
    assert r.status_code == 500 and "FAILNOW" in r.json()["detail"]


async def test_over_capacity_is_429_with_retry_after(settings: Settings):
    engine = FakeEngine(chunk_delay=0.05, chunks_per_segment=10)
    async with running(settings.model_copy(update={"max_concurrency": 1}), engine) as client:
        body = {"name": "female", "text": "a b c", "response_format": "pcm"}
        first, second = await asyncio.gather(client.post("/speak", json=body), client.post("/speak", json=body))
        assert sorted([first.status_code, second.status_code]) == [200, 429]
        refused = first if first.status_code == 429 else second
        assert refused.headers["retry-after"] == "1"
        assert (await client.post("/speak", json=body)).status_code == 200  # the slot was released
        assert client.app.state.limiter.in_flight == 0


async def test_not_ready_is_503(settings: Settings):
    import httpx

    from api.app import create_app

    engine = FakeEngine()
    engine.start_gate = asyncio.Event()
    app = create_app(settings, engine)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            assert (await client.get("/health")).status_code == 200
            ready = await client.get("/ready")
            speak = await client.post("/speak", json={"name": "female", "text": "hi"})
            assert ready.status_code == 503 and speak.status_code == 503 and speak.headers["retry-after"]
            engine.start_gate.set()
            await app.state.loading
            ready = (await client.get("/ready")).json()
            assert ready["status"] == "ready" and ready["llm_weights"] is None  # the fake engine has no LLM
