"""Against a real uvicorn server on 127.0.0.1: the official ``openai`` client, the guide's cURL
example, client-disconnect cancellation, a mid-stream failure, and 16 concurrent streams."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import openai
import pytest
from api_fakes import FakeEngine, decode, decode_pcm, tone
from conftest import live_server

from fasttts.config import Settings

FORMATS = ["mp3", "opus", "aac", "flac", "wav", "pcm"]


def _samples(data: bytes, fmt: str) -> int:
    return len(decode_pcm(data)) if fmt == "pcm" else len(decode(data)[0])


def _wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def piper_server(settings: Settings, piper_engine):
    with live_server(settings.model_copy(update={"api_key": "test-key"}), piper_engine) as server:
        yield server


def test_openai_client_every_format(piper_server):
    client = openai.OpenAI(base_url=f"{piper_server.url}/v1", api_key="test-key", max_retries=0)
    for fmt in FORMATS:
        plain = client.audio.speech.create(model="tts-1", voice="alloy", input="Hello there.", response_format=fmt)
        with client.audio.speech.with_streaming_response.create(model="gpt-4o-mini-tts", voice="nova", input="Hello there.", response_format=fmt) as response:
            streamed = b"".join(response.iter_bytes(1024))
        assert _samples(plain.content, fmt) > 0 and _samples(streamed, fmt) > 0, fmt
        # Piper draws its phoneme durations at random (inside its ONNX graph, unseedable), so two
        # syntheses of the same words differ in length by up to ~10 %
        assert abs(_samples(plain.content, fmt) - _samples(streamed, fmt)) <= 0.2 * _samples(plain.content, fmt) + 2048, fmt
    with pytest.raises(openai.NotFoundError):
        client.audio.speech.create(model="tts-1", voice="nobody", input="hi")
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{piper_server.url}/v1", api_key="wrong", max_retries=0).audio.speech.create(model="tts-1", voice="alloy", input="hi")
    with pytest.raises(openai.BadRequestError):
        client.audio.speech.create(model="tts-1", voice="alloy", input="hi", extra_body={"pitch": "high"})


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_guide_curl_example(settings: Settings, tmp_path: Path):
    """The guide's §3 example, verbatim but for its two placeholders (host:port, /path/to/ref.wav)."""
    example = (Path(__file__).parent / "data" / "guide_clone_voice.sh").read_text()
    ref = tmp_path / "ref.wav"
    ref.write_bytes(tone(1.0))
    with live_server(settings.model_copy(update={"api_key": "YOUR_API_KEY"}), FakeEngine()) as server:
        command = example.replace("http://localhost:8000", server.url).replace("/path/to/ref.wav", str(ref))
        assert '-F "reference_audio_file=@' in command and "Bearer YOUR_API_KEY" in command
        subprocess.run(["bash", "-c", command], cwd=tmp_path, check=True, capture_output=True, timeout=60)
    audio, rate = decode((tmp_path / "output.wav").read_bytes())
    assert rate == 16000 and abs(len(audio) / rate - 0.2) < 0.02  # "Hello, world": 2 words x 0.1 s


def test_client_disconnect_cancels_generation(settings: Settings):
    engine = FakeEngine(chunk_delay=0.2, chunks_per_segment=50)
    with live_server(settings, engine) as server:
        with httpx.stream(
            "POST", f"{server.url}/speak", json={"name": "female", "text": "a long request", "stream": True, "response_format": "pcm"}, timeout=30
        ) as r:
            assert r.status_code == 200
            chunks = r.iter_bytes()
            next(chunks)
            assert engine.num_active == 1
        # the connection is closed: the engine's request is cancelled, not run through its 10 s of work
        assert engine.cancelled_seen.wait(timeout=60)  # the timeout only guards against a hang
        assert _wait_until(lambda: engine.num_active == 0, timeout=60)
        assert engine.cancelled == 1
        assert server.app.state.limiter.in_flight == 0


def test_error_after_streaming_began_cuts_the_body(settings: Settings):
    with live_server(settings, FakeEngine()) as server:
        with pytest.raises(httpx.RemoteProtocolError):
            with httpx.stream(
                "POST", f"{server.url}/speak", json={"name": "female", "text": "FAILMIDWAY here", "stream": True, "response_format": "wav"}, timeout=30
            ) as r:
                assert r.status_code == 200
                b"".join(r.iter_bytes())
        assert httpx.get(f"{server.url}/health").status_code == 200


def test_sixteen_concurrent_streams_all_served(settings: Settings):
    engine = FakeEngine(chunk_delay=0.05, chunks_per_segment=8)
    with live_server(settings, engine) as server:

        async def main():
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:

                async def one(i: int) -> bytes:
                    body = {"model": "tts-1", "input": f"client number {i} speaking", "voice": "alloy", "response_format": "pcm"}
                    async with client.stream("POST", "/v1/audio/speech", json=body) as r:
                        assert r.status_code == 200
                        return b"".join([c async for c in r.aiter_bytes()])

                tasks = [asyncio.create_task(one(i)) for i in range(16)]
                health = []
                while not all(t.done() for t in tasks):
                    r = await client.get("/health")
                    health.append((r.status_code, engine.num_active))
                    await asyncio.sleep(0.05)
                return [t.result() for t in tasks], health

        results, health = asyncio.run(main())
    assert all(abs(len(decode_pcm(r)) / 24000 - 0.4) < 0.01 for r in results)  # 4 words each, all complete (OpenAI pcm: 24 kHz)
    assert health and all(code == 200 for code, _ in health)
    assert max(active for _, active in health) > 1  # /health answered while several streams were in flight


@pytest.mark.parametrize("path", ["/speak", "/v1/audio/speech"])
def test_client_disconnect_cancels_a_non_streaming_request(settings: Settings, path: str):
    """A client that gives up on a whole-file request stops the engine work within a second and
    is recorded as 499 (issue #16: such requests ran to the end and were logged 200)."""
    engine = FakeEngine(chunk_delay=0.2, chunks_per_segment=50)  # 10 s of work if nobody stops it
    body = (
        {"name": "female", "text": "a long request", "stream": False, "response_format": "wav"}
        if path == "/speak"
        else {"model": "tts-1", "input": "a long request", "voice": "alloy", "stream": False, "response_format": "wav"}
    )
    payload = json.dumps(body).encode()
    with live_server(settings, engine) as server:
        with socket.create_connection(("127.0.0.1", server.port)) as conn:
            conn.sendall(f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n".encode() + payload)
            assert _wait_until(lambda: engine.num_active == 1, timeout=5.0)  # the engine works on it
        # the client has closed its connection without reading an answer
        assert _wait_until(lambda: engine.num_active == 0, timeout=1.0), "the engine kept working after the client left"
        assert engine.cancelled == 1
        assert _wait_until(lambda: server.app.state.limiter.in_flight == 0, timeout=1.0)
        metrics = httpx.get(f"{server.url}/metrics").text
        assert f'fasttts_http_requests_total{{method="POST",route="{path}",status="499"}} 1.0' in metrics, metrics
