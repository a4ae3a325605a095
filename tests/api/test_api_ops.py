"""Auth, health/readiness, metrics, request ids, CORS, the web page's files and /docs."""

from __future__ import annotations

import pytest
from api_fakes import FakeEngine
from conftest import running

from fasttts.config import Settings

KEY = "s3cret-key"

# The app's background tasks (model loading, the job runner) are created by async fixtures on the
# session loop (pyproject: asyncio_default_fixture_loop_scope), so the tests must run on it too.
pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
async def keyed(settings: Settings):
    async with running(settings.model_copy(update={"api_key": KEY}), FakeEngine()) as client:
        yield client


async def test_api_routes_need_the_key(keyed):
    speak = {"name": "female", "text": "hi", "response_format": "wav"}
    missing = await keyed.post("/speak", json=speak)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer" and "Bearer" in missing.json()["detail"]
    wrong = await keyed.post("/v1/audio/speech", json={"model": "tts-1", "input": "hi", "voice": "alloy"}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    for method, path in [
        ("GET", "/audio_roles"),
        ("GET", "/v1/audio_roles"),
        ("GET", "/v1/models"),
        ("GET", "/v1/audio/voices"),
        ("POST", "/clone_voice"),
        ("POST", "/multi_speak"),
        ("DELETE", "/v1/audio/voices/x"),
        ("GET", "/metrics"),
    ]:
        assert (await keyed.request(method, path)).status_code == 401, path
        assert (await keyed.request(method, path, headers={"Authorization": f"Basic {KEY}"})).status_code == 401, path
    ok = await keyed.post("/speak", json=speak, headers={"Authorization": f"Bearer {KEY}"})
    assert ok.status_code == 200
    assert (await keyed.get("/v1/models", headers={"Authorization": f"bearer {KEY}"})).status_code == 200


LIST_ROUTES = ("/v1/models", "/v1/audio/models", "/v1/audio/voices", "/audio_roles", "/v1/audio_roles")
SYNTHESIS = [
    ("POST", "/v1/audio/speech", {"model": "tts-1", "input": "hi", "voice": "alloy", "response_format": "wav"}),
    ("POST", "/speak", {"name": "female", "text": "hi", "response_format": "wav"}),
    ("POST", "/v1/jobs", {"kind": "speak", "text": "hi"}),
]


@pytest.mark.parametrize("open_lists", [False, True])
async def test_list_routes_with_and_without_the_key(settings: Settings, open_lists: bool):
    """--open_list_routes leaves exactly the read-only lists open (Open WebUI calls them without a
    key); synthesis, voice changes, jobs and model details keep needing the key either way."""
    auth = {"Authorization": f"Bearer {KEY}"}
    async with running(settings.model_copy(update={"api_key": KEY, "open_list_routes": open_lists}), FakeEngine()) as client:
        for path in LIST_ROUTES:
            assert (await client.get(path, headers=auth)).status_code == 200, path
            assert (await client.get(path)).status_code == (200 if open_lists else 401), path
            assert (await client.get(path, headers={"Authorization": "Bearer wrong"})).status_code == (200 if open_lists else 401), path
        for method, path, body in SYNTHESIS:
            assert (await client.request(method, path, json=body)).status_code == 401, path
            assert (await client.request(method, path, json=body, headers=auth)).status_code in (200, 202), path
        for method, path in [("GET", "/v1/models/tts-1"), ("POST", "/v1/audio/voices"), ("DELETE", "/v1/audio/voices/x"), ("GET", "/v1/jobs")]:
            assert (await client.request(method, path)).status_code == 401, path


async def test_open_list_routes_without_a_key_changes_nothing(settings: Settings):
    async with running(settings.model_copy(update={"open_list_routes": True}), FakeEngine()) as client:
        for path in (*LIST_ROUTES, "/v1/models/tts-1"):
            assert (await client.get(path)).status_code == 200, path
        assert (await client.post(*SYNTHESIS[0][1:2], json=SYNTHESIS[0][2])).status_code == 200


async def test_open_routes_stay_open(keyed):
    for path in ("/health", "/ready", "/", "/static/app.js", "/static/style.css", "/docs", "/openapi.json"):
        assert (await keyed.get(path)).status_code == 200, path


async def test_request_id_on_every_response(fake_client):
    for r in (await fake_client.get("/health"), await fake_client.get("/nope"), await fake_client.post("/speak", json={})):
        assert len(r.headers["x-request-id"]) >= 16
    r = await fake_client.get("/health", headers={"X-Request-ID": "trace-123"})
    assert r.headers["x-request-id"] == "trace-123"
    r = await fake_client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert r.headers["x-request-id"] != "bad id\twith spaces"


async def test_metrics_prometheus_format(fake_client):
    await fake_client.post("/speak", json={"name": "female", "text": "one two three", "response_format": "wav"})
    await fake_client.post("/speak", json={"name": "nobody", "text": "x"})
    text = (await fake_client.get("/metrics")).text
    assert 'fasttts_http_requests_total{method="POST",route="/speak",status="200"} 1.0' in text
    assert 'fasttts_http_requests_total{method="POST",route="/speak",status="404"} 1.0' in text
    assert 'fasttts_audio_seconds_total{route="/speak"} 0.3' in text
    for name in (
        "fasttts_http_request_duration_seconds_bucket",
        "fasttts_time_to_first_audio_seconds_count",
        "fasttts_active_requests 0.0",
        "fasttts_queued_requests 0.0",
        "fasttts_batch_occupancy",
    ):
        assert name in text, name


async def test_cors(settings: Settings):
    async with running(settings.model_copy(update={"cors_origins": ["http://app.example"]}), FakeEngine()) as client:
        r = await client.options("/v1/audio/speech", headers={"Origin": "http://app.example", "Access-Control-Request-Method": "POST"})
        assert r.headers["access-control-allow-origin"] == "http://app.example"
        r = await client.options("/v1/audio/speech", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in r.headers


async def test_docs_list_every_route_with_examples(fake_client):
    spec = (await fake_client.get("/openapi.json")).json()
    paths = set(spec["paths"])
    for path in (
        "/clone_voice",
        "/speak",
        "/multi_speak",
        "/audio_roles",
        "/v1/clone_voice",
        "/v1/speak",
        "/v1/multi_speak",
        "/v1/audio_roles",
        "/v1/audio/speech",
        "/v1/models",
        "/v1/audio/voices",
        "/v1/audio/voices/{name}",
        "/health",
        "/ready",
        "/metrics",
    ):
        assert path in paths, path
    schemas = spec["components"]["schemas"]
    for model in ("SpeakRequest", "MultiSpeakRequest", "OpenAISpeechRequest"):
        assert schemas[model].get("examples"), model
    clone_form = spec["paths"]["/clone_voice"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert clone_form  # multipart with reference_audio_file


async def test_serve_flags_match_the_guide():
    from api.main import build_parser, parse_settings

    guide = {
        "--model_path": None,
        "--backend": "torch",
        "--snac_path": None,
        "--role_dir": None,
        "--api_key": None,
        "--llm_device": "auto",
        "--tokenizer_device": "auto",
        "--detokenizer_device": "auto",
        "--wav2vec_attn_implementation": "eager",
        "--llm_attn_implementation": "eager",
        "--max_length": 32768,
        "--llm_gpu_memory_utilization": 0.6,
        "--torch_dtype": "auto",
        "--cache_implementation": None,
        "--seed": 0,
        "--batch_size": 1,
        "--llm_batch_size": 256,
        "--wait_timeout": 0.01,
        "--host": "0.0.0.0",
        "--port": 8000,
    }
    flags = {a for action in build_parser()._actions for a in action.option_strings}
    assert set(guide) | {"--model_name", "--fix_voice", "--max_concurrency", "--cors_origins"} <= flags
    defaults, _ = parse_settings([])
    for flag, value in guide.items():
        assert getattr(defaults, flag[2:]) == value, flag
    s, _ = parse_settings(
        [
            "--model_path",
            "Spark-TTS-0.5B",
            "--backend",
            "vllm",
            "--llm_device",
            "cuda",
            "--tokenizer_device",
            "cuda",
            "--detokenizer_device",
            "cuda",
            "--wav2vec_attn_implementation",
            "sdpa",
            "--llm_attn_implementation",
            "sdpa",
            "--torch_dtype",
            "bfloat16",
            "--max_length",
            "32768",
            "--llm_gpu_memory_utilization",
            "0.6",
            "--host",
            "0.0.0.0",
            "--port",
            "8000",
            "--fix_voice",
            "--max_concurrency",
            "4",
            "--model_name",
            "spark",
            "--cors_origins",
            "http://a",
            "http://b",
            "--api_key",
            "k",
            "--role_dir",
            "roles",
            "--seed",
            "5",
            "--batch_size",
            "2",
            "--llm_batch_size",
            "8",
            "--wait_timeout",
            "0.05",
            "--cache_implementation",
            "static",
            "--snac_path",
            "snac",
        ]
    )
    assert (s.model_path, s.backend, s.llm_device, s.torch_dtype, s.fix_voice, s.max_concurrency, s.cors_origins, s.api_key) == (
        "Spark-TTS-0.5B",
        "vllm",
        "cuda",
        "bfloat16",
        True,
        4,
        ["http://a", "http://b"],
        "k",
    )
    assert (s.role_dir, s.seed, s.batch_size, s.llm_batch_size, s.wait_timeout, s.cache_implementation, s.snac_path) == (
        "roles",
        5,
        2,
        8,
        0.05,
        "static",
        "snac",
    )
    with pytest.raises(SystemExit):
        parse_settings(["--backend", "tensorflow"])


async def test_jobs_router_is_served_by_the_app(fake_client):
    from api_fakes import decode
    from job_waits import wait_final

    r = await fake_client.post("/v1/jobs", json={"kind": "speak", "text": "three words here", "voice": {"name": "female"}, "output_format": "wav"})
    assert r.status_code == 202, r.text
    await wait_final(fake_client.app.state.jobs, r.json()["id"])
    job = (await fake_client.get(f"/v1/jobs/{r.json()['id']}")).json()
    assert job["status"] == "succeeded", job
    audio = await fake_client.get(job["results"]["audio.wav"].replace("http://testserver", ""))
    assert abs(len(decode(audio.content)[0]) / 16000 - 0.3) < 0.02


async def test_long_sync_requests_run_as_jobs(settings: Settings):
    from api_fakes import decode

    async with running(settings.model_copy(update={"job_route_min_chars": 20}), FakeEngine()) as client:
        client.app.state.route_jobs = True  # as with a broker; the in-process runner plays the worker
        long_text = "this text is long enough to be routed"
        r = await client.post("/speak", json={"name": "male", "text": long_text, "response_format": "wav"})
        assert r.status_code == 200 and r.headers["x-job-id"].startswith("job_")
        assert abs(len(decode(r.content)[0]) / 16000 - 0.8) < 0.05  # 8 words x 0.1 s
        r = await client.post("/v1/audio/speech", json={"model": "tts-1", "input": long_text, "voice": "alloy", "stream": False, "response_format": "flac"})
        assert r.status_code == 200 and "x-job-id" in r.headers and r.headers["content-type"] == "audio/flac"
        for speed in (1.0, 2.0):  # a job renders the model's rate: pcm is resampled to OpenAI's 24 kHz, speed kept
            r = await client.post(
                "/v1/audio/speech", json={"model": "tts-1", "input": long_text, "voice": "alloy", "stream": False, "response_format": "pcm", "speed": speed}
            )
            assert r.status_code == 200 and "x-job-id" in r.headers and r.headers["x-sample-rate"] == "24000"
            assert abs(len(r.content) / 2 / 24000 - 0.8 / speed) < 0.05
        r = await client.post("/multi_speak", json={"text": "<role:female> hi <role:male> yo", "response_format": "wav"})
        assert r.status_code == 200 and "x-job-id" in r.headers
        r = await client.post("/speak", json={"name": "male", "text": "short", "response_format": "wav"})
        assert r.status_code == 200 and "x-job-id" not in r.headers
        r = await client.post("/speak", json={"name": "male", "text": long_text, "stream": True, "response_format": "wav"})
        assert r.status_code == 200 and "x-job-id" not in r.headers  # streaming never queues
        r = await client.post("/speak", json={"name": "male", "text": "FAILNOW " + long_text, "response_format": "wav"})
        assert r.status_code == 500 and "FAILNOW" in r.json()["detail"]


async def test_unexpected_errors_are_json_500_with_request_id(fake_client):
    r = await fake_client.post("/speak", json={"name": "female", "text": "CRASHNOW"})
    assert r.status_code == 500 and r.json() == {"detail": "internal server error"} and r.headers["x-request-id"]
    r = await fake_client.post("/v1/audio/speech", json={"model": "tts-1", "input": "CRASHNOW", "voice": "alloy"})
    assert r.status_code == 500 and r.json()["error"]["type"] == "server_error" and "bug" not in r.text
    assert fake_client.app.state.limiter.in_flight == 0
