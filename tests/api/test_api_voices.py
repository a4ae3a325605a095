"""Voice management over HTTP and durability across restarts (a new app on the same data dir)."""

from __future__ import annotations

from pathlib import Path

import pytest
from api_fakes import FakeEngine, tone
from conftest import running

from fasttts.config import Settings

# The app's background tasks (model loading, the job runner) are created by async fixtures on the
# session loop (pyproject: asyncio_default_fixture_loop_scope), so the tests must run on it too.
pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _create(client, name: str, audio: bytes | None = None, **data):
    files = {"reference_audio_file": ("ref.wav", audio if audio is not None else tone(0.5), "audio/wav")}
    return await client.post("/v1/audio/voices", data={"name": name, **data}, files=files)


async def test_create_list_fetch_delete(fake_client):
    r = await _create(fake_client, "alice", reference_text="hello there")
    assert r.status_code == 201, r.text
    assert r.json()["id"] == "alice" and r.json()["kind"] == "clone" and r.json()["reference_text"] == "hello there"
    assert {"id": "alice", "name": "alice"} in (await fake_client.get("/v1/audio/voices")).json()["voices"]
    assert "alice" in (await fake_client.get("/audio_roles")).json()["roles"]
    assert (await fake_client.get("/v1/audio/voices/alice")).json()["has_audio"] is True
    assert (await fake_client.get("/v1/audio/voices/alice/audio")).content == tone(0.5)
    assert (await fake_client.get("/v1/audio/voices/female")).json()["kind"] == "builtin"
    speak = await fake_client.post("/speak", json={"name": "alice", "text": "hi", "response_format": "wav"})
    assert speak.status_code == 200
    assert (await fake_client.delete("/v1/audio/voices/alice")).json() == {"id": "alice", "deleted": True}
    assert (await fake_client.get("/v1/audio/voices/alice")).status_code == 404
    assert (await fake_client.delete("/v1/audio/voices/alice")).status_code == 404
    assert (await fake_client.post("/speak", json={"name": "alice", "text": "hi"})).status_code == 404


@pytest.mark.parametrize("name", ["../etc", "a/b", "<x>", "a,b", ".hidden", " padded"])
async def test_names_validated(fake_client, name):
    r = await _create(fake_client, name)
    assert r.status_code == 422 and r.json()["error"]["param"] == "name", r.text


async def test_duplicates_and_bad_audio(fake_client):
    assert (await _create(fake_client, "bob")).status_code == 201
    again = await _create(fake_client, "bob")
    assert again.status_code == 409 and again.json()["error"]["param"] == "name" and "'bob'" in again.json()["error"]["message"]
    assert (await _create(fake_client, "female")).status_code == 409  # a built-in name
    assert (await _create(fake_client, "carol", b"garbage" * 100)).status_code == 415
    assert (await fake_client.post("/v1/audio/voices", data={"name": "dave"})).status_code == 422


async def test_freeze_created_voice(fake_client):
    r = await fake_client.post("/v1/audio/voices", data={"name": "deep", "gender": "male", "pitch": "low"})
    assert r.status_code == 201 and r.json()["kind"] == "frozen" and r.json()["has_audio"] is False
    assert (await fake_client.get("/v1/audio/voices/deep/audio")).status_code == 404


async def test_piper_cannot_create_voices(piper_client):
    r = await _create(piper_client, "alice")
    assert r.status_code == 400 and r.json()["error"]["param"] == "reference_audio_file"
    r = await piper_client.post("/v1/audio/voices", data={"name": "x", "gender": "male"})
    assert r.status_code == 400


async def test_voices_survive_restart_without_reencoding(settings: Settings):
    async with running(settings, FakeEngine()) as client:
        assert (await _create(client, "alice")).status_code == 201
        await client.post("/v1/audio/voices", data={"name": "deep", "gender": "male"})
        before = (await client.post("/speak", json={"name": "alice", "text": "same words", "response_format": "pcm"})).content
    engine = FakeEngine()
    async with running(settings, engine) as client:
        voices = [v["id"] for v in (await client.get("/v1/audio/voices")).json()["voices"]]
        after = (await client.post("/speak", json={"name": "alice", "text": "same words", "response_format": "pcm"})).content
        assert (await client.get("/v1/audio/voices/alice/audio")).content == tone(0.5)
    assert {"alice", "deep"} <= set(voices)
    assert engine.add_voice_calls == 0 and engine.freeze_calls == 0
    assert after == before


async def test_role_dir_scanned_once(settings: Settings):
    roles = Path(settings.role_dir)
    (roles / "narrator").mkdir(parents=True)
    (roles / "narrator" / "voice.wav").write_bytes(tone(0.4))
    (roles / "narrator" / "reference_text.txt").write_text("The narrator speaks.\n")
    (roles / "empty").mkdir()
    (roles / "bad,name").mkdir()
    (roles / "bad,name" / "a.wav").write_bytes(tone(0.4))
    first = FakeEngine()
    async with running(settings, first) as client:
        info = (await client.get("/v1/audio/voices/narrator")).json()
        roles_listed = (await client.get("/audio_roles")).json()["roles"]
    assert info["kind"] == "role" and info["reference_text"] == "The narrator speaks."
    assert "narrator" in roles_listed and "empty" not in roles_listed and "bad,name" not in roles_listed
    assert first.add_voice_calls == 1
    second = FakeEngine()
    async with running(settings, second) as client:
        assert "narrator" in (await client.get("/audio_roles")).json()["roles"]
    assert second.add_voice_calls == 0  # unchanged folder: loaded from its stored state
    (roles / "narrator" / "voice.wav").write_bytes(tone(0.6))
    third = FakeEngine()
    async with running(settings, third):
        pass
    assert third.add_voice_calls == 1  # changed audio: encoded again


async def test_fix_voice_frozen_once_and_persisted(settings: Settings):
    fixed = settings.model_copy(update={"fix_voice": True})
    first = FakeEngine(fix_voice=True)
    async with running(fixed, first) as client:
        a = (await client.post("/speak", json={"name": "female", "text": "x", "response_format": "pcm"})).content
    second = FakeEngine(fix_voice=True)
    async with running(fixed, second) as client:
        b = (await client.post("/speak", json={"name": "female", "text": "x", "response_format": "pcm"})).content
    assert first.freeze_calls >= 2 and second.freeze_calls == 0
    assert a == b
