"""Inputs that answered 500 (issue #16, item 10) and now answer a 4xx naming the field: lone
surrogates, NUL and punctuation-only text, NaN/Infinity in float fields (whose 422 must still be
strict JSON), seeds past 64 bits, a huge job-list offset, malformed reference URLs."""

from __future__ import annotations

import json

import pytest

from fasttts.errors import InvalidRequestError
from fasttts.params import MAX_SEED, SamplingParams, offset_seed

pytestmark = pytest.mark.asyncio(loop_scope="session")

JSON = {"content-type": "application/json"}


def strict_json(text: str) -> object:
    """Parse as strict JSON: NaN or Infinity in an answer is itself a bug."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"non-standard JSON constant {constant} in the answer")

    return json.loads(text, parse_constant=refuse)


def param_of(body: dict) -> str | None:
    """The field an error names, in the native, FastAPI-validation and OpenAI shapes."""
    if "error" in body:
        return body["error"]["param"]
    if isinstance(body.get("detail"), list):
        return body["detail"][0]["loc"][-1]
    return body.get("param")


@pytest.mark.parametrize(
    ("path", "raw", "field"),
    [
        ("/speak", '{"name": "female", "text": "\\ud800 hi"}', "text"),
        ("/multi_speak", '{"text": "<role:female> a \\udfff b"}', "text"),
        ("/v1/audio/speech", '{"model": "tts-1", "input": "\\ud800", "voice": "alloy"}', "input"),
        ("/speak", '{"name": "female", "text": "hi", "temperature": NaN}', "temperature"),
        ("/speak", '{"name": "female", "text": "hi", "top_p": Infinity}', "top_p"),
        ("/multi_speak", '{"text": "<role:female> hi", "repetition_penalty": -Infinity}', "repetition_penalty"),
        ("/v1/speak", '{"name": "female", "text": "hi", "temperature": NaN}', "temperature"),
        ("/v1/audio/speech", '{"model": "tts-1", "input": "hi", "voice": "alloy", "speed": NaN}', "speed"),
        ("/speak", '{"name": "female", "text": "hi\\u0000there"}', "text"),
        ("/v1/audio/speech", '{"model": "tts-1", "input": "a\\u0007b", "voice": "alloy"}', "input"),
        ("/speak", '{"name": "female", "text": "hi", "seed": 9223372036854775808}', "seed"),
        ("/v1/audio/speech", '{"model": "tts-1", "input": "hi", "voice": "alloy", "seed": 18446744073709551616}', "seed"),
    ],
)
async def test_json_bodies_python_accepts_but_json_cannot_carry(fake_client, path, raw, field):
    r = await fake_client.post(path, content=raw, headers=JSON)
    assert r.status_code == 422, r.text
    body = strict_json(r.text)
    assert param_of(body) == field, body
    assert fake_client.app.state.limiter.in_flight == 0


async def test_seed_limits_on_forms_and_jobs(fake_client):
    with pytest.raises(InvalidRequestError) as e:
        SamplingParams(seed=MAX_SEED + 1)
    assert e.value.param == "seed"
    assert offset_seed(MAX_SEED, 1) == 0 and offset_seed(5, 7) == 12  # derived seeds stay in range
    too_big = str(MAX_SEED + 1)
    r = await fake_client.post("/clone_voice", data={"text": "hi", "reference_audio": "AAAA", "seed": too_big})
    assert r.status_code == 422 and param_of(r.json()) == "seed", r.text
    r = await fake_client.post("/v1/audio/voices", data={"name": "x", "gender": "male", "seed": too_big})
    assert r.status_code == 422 and param_of(r.json()) == "seed", r.text
    r = await fake_client.post("/v1/jobs", json={"kind": "speak", "text": "hi", "sampling": {"seed": MAX_SEED + 1}})
    assert r.status_code == 422 and param_of(r.json()) == "seed", r.text
    ok = await fake_client.post("/speak", json={"name": "female", "text": "a b c", "seed": MAX_SEED, "response_format": "wav"})
    assert ok.status_code == 200  # the largest seed works, and so do the seeds derived from it per segment


async def test_jobs_refuse_control_characters_and_huge_offsets(fake_client):
    r = await fake_client.post("/v1/jobs", json={"kind": "speak", "text": "a\u0000b"})
    assert r.status_code == 422 and param_of(r.json()) == "text", r.text
    r = await fake_client.post("/v1/jobs", content='{"kind": "speak", "text": "\\ud800"}', headers=JSON)
    assert r.status_code == 422, r.text
    for offset in ("9223372036854775808", "99999999999999999999999"):
        r = await fake_client.get(f"/v1/jobs?offset={offset}")
        assert r.status_code == 422 and param_of(r.json()) == "offset", r.text
    r = await fake_client.get("/v1/jobs?offset=2147483647")
    assert r.status_code == 200 and r.json()["data"] == []


@pytest.mark.parametrize("url", ["http://[::1", "http://127.0.0.1:99999/x", "https://[fe80::1%zz/a", "http://example.com:-1/"])
async def test_malformed_reference_urls(fake_client, url):
    r = await fake_client.post("/clone_voice", data={"text": "hi", "reference_audio": url})
    assert r.status_code == 422 and param_of(r.json()) == "reference_audio", r.text
    r = await fake_client.post("/v1/audio/voices", data={"name": "v", "reference_audio": url})
    assert r.status_code == 422 and param_of(r.json()) == "reference_audio", r.text


async def test_piper_nul_and_punctuation_only_text(piper_client):
    r = await piper_client.post("/speak", json={"name": "joe", "text": "hi\u0000there"})
    assert r.status_code == 422 and r.json()["param"] == "text", r.text
    for text in (".", "...", "' ' '", "。", "_"):
        r = await piper_client.post("/speak", json={"name": "joe", "text": text, "response_format": "wav"})
        assert r.status_code == 422 and r.json()["param"] == "text" and "nothing to speak" in r.json()["detail"], (text, r.text)
        r = await piper_client.post("/v1/audio/speech", json={"model": "tts-1", "input": text, "voice": "alloy", "stream": False})
        assert r.status_code == 422 and r.json()["error"]["param"] == "text", (text, r.text)
    r = await piper_client.post("/speak", json={"name": "joe", "text": "Fine. ... Still fine!", "response_format": "wav"})
    assert r.status_code == 200, r.text  # punctuation between words is not refused


async def test_piper_top_temperature_speaks(piper_client):
    """Found by the fuzz test: temperature 9 scaled Piper's duration noise 13x and ONNX Runtime
    asked for a 195 GB buffer (500). The noise scale is capped, so every allowed value speaks."""
    for temperature in (9.0, 10.0):
        r = await piper_client.post(
            "/v1/audio/speech",
            json={"model": "tts-1", "input": "Hello from FastTTS!", "voice": "alloy", "response_format": "wav", "stream": False, "temperature": temperature},
        )
        assert r.status_code == 200, r.text
