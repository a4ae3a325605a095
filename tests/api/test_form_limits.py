"""Form fields are bounded by our body caps, not by Starlette's 1 MiB per field (issue #16): a base64
``reference_audio`` or a job's ``request`` field over 1 MiB reaches the route's own checks, which
answer a 4xx naming the field, where Starlette answered a 400 naming nothing."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from api_fakes import FakeEngine
from conftest import running

from fasttts.config import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")

STARLETTE_PART_LIMIT = 1024 * 1024
"""Starlette's default ``max_part_size``: every field below is larger."""


def param_of(body: dict) -> str | None:
    return body["error"]["param"] if "error" in body else body.get("param")


def multipart(**fields: str) -> dict[str, tuple[None, str]]:
    """Plain (file-less) multipart fields, as ``curl -F`` sends them."""
    return {name: (None, value) for name, value in fields.items()}


def big_base64(size: int) -> str:
    value = base64.b64encode(os.urandom(size)).decode()
    assert len(value) > STARLETTE_PART_LIMIT
    return value


@pytest.mark.parametrize(
    ("path", "fields"),
    [("/clone_voice", {"text": "Hi."}), ("/v1/clone_voice", {"text": "Hi."}), ("/v1/audio/voices", {"name": "big"})],
)
@pytest.mark.parametrize("encoding", ["multipart", "urlencoded"])
async def test_a_base64_reference_over_1_mib_reaches_the_audio_check(fake_client, path, fields, encoding):
    """Random bytes are no audio: the answer is the decoder's 415 naming the field."""
    form = {**fields, "reference_audio": big_base64(900_000)}
    if encoding == "multipart":
        r = await fake_client.post(path, files=multipart(**form))
    else:
        r = await fake_client.post(path, data=form)
    assert r.status_code == 415, r.text
    assert param_of(r.json()) == "reference_audio"


async def test_a_base64_reference_over_the_upload_cap_is_a_413_naming_the_field(tmp_path: Path):
    settings = Settings(data_dir=tmp_path / "data", role_dir=str(tmp_path / "roles"), max_upload_bytes=800_000)
    async with running(settings, FakeEngine()) as client:
        r = await client.post("/clone_voice", files=multipart(text="Hi.", reference_audio=big_base64(900_000)))
    assert r.status_code == 413, r.text
    assert param_of(r.json()) == "reference_audio"
    assert "800000" in r.json()["detail"]


async def test_a_base64_reference_at_the_upload_cap_fits_in_the_multipart_body_cap(tmp_path: Path):
    """The multipart cap has room for the upload cap's worth of base64, so such a body is judged
    by the field's check (here: not audio, 415), not cut off by the body cap (413)."""
    settings = Settings(data_dir=tmp_path / "data", role_dir=str(tmp_path / "roles"), max_upload_bytes=1_200_000)
    async with running(settings, FakeEngine()) as client:
        r = await client.post("/clone_voice", files=multipart(text="Hi.", reference_audio=big_base64(1_200_000)))
    assert r.status_code == 415, r.text
    assert param_of(r.json()) == "reference_audio"


async def test_a_job_request_field_over_1_mib_reaches_the_job_checks(fake_client):
    """1.1 million characters: over ``max_job_chars`` (1,000,000), which the answer names."""
    request = json.dumps({"kind": "speak", "text": "a " * 550_000})
    r = await fake_client.post("/v1/jobs", files=multipart(request=request))
    assert r.status_code == 413, r.text
    assert param_of(r.json()) == "text"
    assert "max_job_chars" in r.json()["error"]["message"]
