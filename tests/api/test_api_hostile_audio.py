"""Crafted reference audio sent to a real server process on a tiny random Spark: every route that
takes audio (``/clone_voice``, ``/v1/audio/voices``, clone jobs) answers a 4xx naming the field for
what cannot be decoded, downmixes what can, and the process keeps serving throughout.

(Issue #16: a WAV with 8 channels killed the server with a SIGSEGV inside PyAV; as a clone job it
was accepted and then killed the server again after every restart.)
"""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from conftest import served
from hostile_audio import DECODABLE, REFUSED, hostile

pytestmark = pytest.mark.slow

SHORT = {"max_tokens": "8", "seed": "1", "response_format": "wav"}  # random weights never stop on their own


@pytest.fixture(scope="module")
def spark_server(tmp_path_factory, tiny_spark_dir):
    with served(tmp_path_factory.mktemp("hostile"), "--model_path", str(tiny_spark_dir), "--max_concurrency", "4") as server:
        yield server


def _job(client: httpx.Client, data: bytes) -> httpx.Response:
    request = {"kind": "clone", "text": "Hello.", "output_format": "wav", "sampling": {"max_tokens": 8, "seed": 1}}
    return client.post("/v1/jobs", data={"request": json.dumps(request)}, files={"reference_audio": ("ref.wav", data, "audio/wav")})


def _param(response: httpx.Response) -> str | None:
    body = response.json()
    return body["error"]["param"] if "error" in body else body.get("param")


def test_refused_audio_is_a_4xx_naming_the_field_on_every_route(spark_server):
    cases = hostile()
    with httpx.Client(base_url=spark_server.url, timeout=120) as client:
        for name in sorted(REFUSED):
            data = cases[name]
            upload = {"reference_audio_file": ("ref.wav", data, "audio/wav")}
            answers = {
                "clone upload": (client.post("/clone_voice", data={"text": "Hi.", **SHORT}, files=upload), "reference_audio_file"),
                "voice": (client.post("/v1/audio/voices", data={"name": f"v-{name}"}, files=upload), "reference_audio_file"),
                "job": (_job(client, data), "reference_audio"),
            }
            form = {"text": "Hi.", "reference_audio": base64.b64encode(data).decode(), **SHORT}
            answers["clone base64"] = (client.post("/clone_voice", data=form), "reference_audio")
            for route, (response, field) in answers.items():
                assert 400 <= response.status_code < 500, (name, route, response.status_code, response.text)
                assert _param(response) == field, (name, route, response.text)
            assert spark_server.alive(), f"the server died on {name}"
        assert client.get("/v1/jobs").json()["total"] == 0  # nothing bad was queued


def test_decodable_multichannel_audio_is_downmixed_and_the_server_stays_up(spark_server):
    cases = hostile()
    with httpx.Client(base_url=spark_server.url, timeout=300) as client:
        for name in sorted(DECODABLE):
            r = client.post("/v1/audio/voices", data={"name": f"ok-{name}"}, files={"reference_audio_file": ("ref.wav", cases[name], "audio/wav")})
            assert r.status_code == 201, (name, r.text)
            assert spark_server.alive(), f"the server died on {name}"
        r = client.post("/clone_voice", data={"text": "Hi.", **SHORT}, files={"reference_audio_file": ("ref.wav", cases["wav-8ch"], "audio/wav")})
        assert r.status_code == 200 and r.content[:4] == b"RIFF", r.text
        job = _job(client, cases["wav-8ch"])
        assert job.status_code == 202, job.text
        url = f"/v1/jobs/{job.json()['id']}"
        for _ in range(600):  # the in-process runner synthesises it in this very server process
            status = client.get(url).json()["status"]
            if status in ("succeeded", "failed", "cancelled"):
                break
            threading_pause(0.2)
        assert status == "succeeded"
        assert spark_server.alive()


def threading_pause(seconds: float) -> None:
    """Poll interval while waiting for a job's state to change."""
    import threading

    threading.Event().wait(seconds)
