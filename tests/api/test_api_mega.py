"""The HTTP layer on the tiny random MegaTTS3 release: voices from a reference .wav plus its .npy
latent (upload, role folder, stored and reloaded without re-aligning), /clone_voice, /speak and
/v1/audio/speech whole and streamed, a job with a Mega voice, and every bad latent a 400 naming
``latent_file``."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np
import pytest
from api_fakes import decode, decode_pcm
from conftest import running
from job_waits import wait_final

from fasttts.config import Settings

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]

SHORT = {"max_tokens": 10, "seed": 3, "diffusion_steps": 2}


@pytest.fixture(scope="session")
def mega_files(tmp_path_factory) -> tuple[Path, bytes, bytes]:
    from fasttts.models.megatts3.random_model import write_random_mega, write_random_voice

    root = write_random_mega(tmp_path_factory.mktemp("mega") / "tiny", size="tiny")
    wav, npy = write_random_voice(tmp_path_factory.mktemp("mega-voice"), seconds=1.0, seed=2)
    return root, wav.read_bytes(), npy.read_bytes()


@pytest.fixture(scope="session")
async def mega_engine(mega_files):
    from fasttts.models.registry import AutoEngine

    engine = AutoEngine(Settings(model_path=str(mega_files[0]), llm_device="cpu"))
    yield engine
    await engine.shutdown()


def _upload(wav: bytes, npy: bytes | None) -> dict:
    files = {"reference_audio_file": ("ref.wav", wav, "audio/wav")}
    if npy is not None:
        files["latent_file"] = ("ref.npy", npy, "application/octet-stream")
    return files


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


async def test_voice_upload_speak_and_openai(settings: Settings, mega_engine, mega_files):
    _, wav, npy = mega_files
    async with running(settings, mega_engine) as client:
        r = await client.post("/v1/audio/voices", data={"name": "alice"}, files=_upload(wav, npy))
        assert r.status_code == 201, r.text
        assert "alice" in (await client.get("/audio_roles")).json()["roles"]
        whole = await client.post("/speak", json={"name": "alice", "text": "Hello there.", "response_format": "pcm", **SHORT})
        assert whole.status_code == 200, whole.text
        streamed = await client.post("/speak", json={"name": "alice", "text": "Hello there.", "response_format": "pcm", "stream": True, **SHORT})
        assert streamed.status_code == 200 and len(decode_pcm(whole.content)) > 0
        np.testing.assert_array_equal(decode_pcm(streamed.content), decode_pcm(whole.content))
        for fmt, stream in (("mp3", False), ("wav", True), ("flac", False)):
            r = await client.post(
                "/v1/audio/speech", json={"model": "tts-1", "input": "Hi.", "voice": "alice", "response_format": fmt, "stream": stream, **SHORT}
            )
            assert r.status_code == 200, r.text
            audio, rate = decode(r.content)
            assert rate == 24000 and len(audio) > 0
        r = await client.post("/v1/audio/speech", json={"model": "tts-1", "input": "Hi.", "voice": "alloy", "response_format": "wav", **SHORT})
        assert r.status_code == 200, r.text  # OpenAI names fall back to a registered voice


async def test_missing_and_bad_latents_are_400_naming_latent_file(settings: Settings, mega_engine, mega_files):
    _, wav, npy = mega_files
    good = np.load(io.BytesIO(npy))
    async with running(settings, mega_engine) as client:
        r = await client.post("/v1/audio/voices", data={"name": "bob"}, files=_upload(wav, None))
        assert r.status_code == 400 and r.json()["error"]["param"] == "latent_file", r.text  # no encoder: the latent is required
        for latent in (_npy(good[:, :, :8]), _npy(good.astype(np.int16)), _npy(good[:, 1:]), _npy(np.concatenate([good, good], 1)), b"not a numpy file"):
            r = await client.post("/v1/audio/voices", data={"name": "bob"}, files=_upload(wav, latent))
            assert r.status_code == 422, r.text
            assert r.json()["error"]["param"] == "latent_file" and "latent_file" in r.json()["error"]["message"]
        r = await client.post("/clone_voice", data={"text": "Hello.", "response_format": "wav"}, files=_upload(wav, None))
        assert r.status_code == 400 and "latent_file" in r.text
        r = await client.post("/v1/audio/voices", data={"name": "alice2"}, files=_upload(wav, npy))
        r = await client.post("/speak", json={"name": "alice2", "text": " \t ", "response_format": "wav"})
        assert r.status_code == 422 and "text" in r.text, r.text
        assert "bob" not in (await client.get("/audio_roles")).json()["roles"]


async def test_clone_voice_with_latent(settings: Settings, mega_engine, mega_files):
    _, wav, npy = mega_files
    async with running(settings, mega_engine) as client:
        data = {"text": "Hello there.", "response_format": "pcm", **{k: str(v) for k, v in SHORT.items()}, "text_weight": "1.4", "speaker_weight": "3.0"}
        whole = await client.post("/clone_voice", data=data, files=_upload(wav, npy))
        assert whole.status_code == 200, whole.text
        streamed = await client.post("/clone_voice", data={**data, "stream": "true"}, files=_upload(wav, npy))
        assert streamed.status_code == 200
        np.testing.assert_array_equal(decode_pcm(streamed.content), decode_pcm(whole.content))
        other = await client.post("/clone_voice", data={**data, "text_weight": "0.5"}, files=_upload(wav, npy))
        assert not np.array_equal(decode_pcm(other.content), decode_pcm(whole.content))  # the option reaches the DiT


async def test_role_dir_voice_is_stored_and_reloaded_without_realigning(settings: Settings, mega_engine, mega_files, monkeypatch):
    _, wav, npy = mega_files
    role = Path(settings.role_dir) / "carol"
    role.mkdir(parents=True)
    (role / "carol.wav").write_bytes(wav)
    (role / "carol.npy").write_bytes(npy)
    async with running(settings, mega_engine) as client:
        before = await client.post("/speak", json={"name": "carol", "text": "Same words.", "response_format": "pcm", **SHORT})
        assert before.status_code == 200, before.text
    mega_engine.remove_voice("carol")  # as if the process restarted

    async def no_alignment(*args, **kwargs):
        raise AssertionError("a stored voice must not be aligned again")

    monkeypatch.setattr(mega_engine, "_preprocess", no_alignment)
    async with running(settings, mega_engine) as client:
        after = await client.post("/speak", json={"name": "carol", "text": "Same words.", "response_format": "pcm", **SHORT})
        assert after.status_code == 200, after.text
    assert after.content == before.content


async def test_job_with_a_mega_voice(settings: Settings, mega_engine, mega_files):
    _, wav, npy = mega_files
    async with running(settings, mega_engine) as client:
        r = await client.post("/v1/audio/voices", data={"name": "dave"}, files=_upload(wav, npy))
        assert r.status_code == 201, r.text
        r = await client.post(
            "/v1/jobs", json={"kind": "speak", "text": "Hello there. A job speaks.", "voice": {"name": "dave"}, "output_format": "wav", "sampling": SHORT}
        )
        assert r.status_code == 202, r.text
        job = await _finished(client, r.json())
        assert job["status"] == "succeeded", job
        audio = await client.get(job["results"]["audio.wav"].replace("http://testserver", ""))
        samples, rate = decode(audio.content)
        assert rate == 24000 and len(samples) > 0


def _wav(data: bytes) -> np.ndarray:
    with wave.open(io.BytesIO(data)) as w:
        assert w.getsampwidth() == 2 and w.getframerate() == 24000
        return decode_pcm(w.readframes(w.getnframes()))


async def _finished(client, job: dict) -> dict:
    """The job's API view once its in-process run has ended (:func:`job_waits.wait_final`)."""
    await wait_final(client.app.state.jobs, job["id"], timeout=120)
    return (await client.get(f"/v1/jobs/{job['id']}")).json()


async def test_audiobook_chapters_end_as_requests_and_make_the_whole_file(settings: Settings, mega_engine, mega_files):
    """Each chapter of a Mega audiobook is the request of its segments (its first with the lead-in,
    its last with the final pause, nothing held back for a crossfade), and the whole file is the
    chapter files back to back."""
    from fasttts.params import SamplingParams, VoiceParams
    from fasttts.text.chapters import chapters_from_text

    one = "The first sentence of the first chapter is long enough to stand alone in its own segment here. It goes on with a second sentence, which the splitter has to put in a segment of its own."
    book = f"Chapter 1\n{one}\n\nChapter 2\nThe second chapter is short."
    _, wav, npy = mega_files
    async with running(settings, mega_engine) as client:
        r = await client.post("/v1/audio/voices", data={"name": "ann"}, files=_upload(wav, npy))
        assert r.status_code == 201, r.text
        r = await client.post("/v1/jobs", json={"kind": "audiobook", "text": book, "voice": {"name": "ann"}, "output_format": "wav", "sampling": SHORT})
        assert r.status_code == 202, r.text
        job = await _finished(client, r.json())
        assert job["status"] == "succeeded", job
        files = {name: _wav((await client.get(url.replace("http://testserver", ""))).content) for name, url in job["results"].items() if name.endswith(".wav")}
    chapters, index = [], 0
    for chapter in chapters_from_text(book):
        segments = mega_engine.segments(chapter.text, VoiceParams(name="ann"))
        for seg in segments:  # the job's seeds follow the segments' indices in the book
            seg.index, index = index, index + 1
        chapters.append(segments)
    assert [len(c) for c in chapters] == [2, 1]
    for c, segments in enumerate(chapters):
        chunks = [a async for a in mega_engine.synthesize_segments(segments, SamplingParams(**SHORT))]
        expected = np.concatenate(chunks)
        got = files[f"chapters/{c + 1:03d}.wav"]
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=2e-4)  # 16-bit PCM; DiT batches differ by ~1e-6
    np.testing.assert_array_equal(files["audio.wav"], np.concatenate([files["chapters/001.wav"], files["chapters/002.wav"]]))
