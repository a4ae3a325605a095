"""The embedded default (SQLite, local store, in-process runner) with the real Piper voice."""

from __future__ import annotations

import asyncio
import io

import av
import numpy as np
import pytest
from conftest import wait_final

from fasttts.errors import InvalidRequestError, UnsupportedFeatureError
from fasttts.jobs import JobService, JobSpec
from fasttts.params import SplitParams, VoiceParams
from fasttts.storage import segment_key

TEXT = "The first sentence is here. A second sentence follows it closely. Then a third one, which is a little longer than the others were. And a short end."
pytestmark = pytest.mark.asyncio(loop_scope="session")

SPLIT = {"length_threshold": 8, "window_size": 8}


def decode(data: bytes) -> tuple[np.ndarray, int]:
    with av.open(io.BytesIO(data)) as c:
        frames = [f.to_ndarray().reshape(-1) for f in c.decode(audio=0)]
        rate = c.streams.audio[0].rate
    return np.concatenate(frames), rate


async def test_speak_job_runs_every_segment_once_and_merges(embedded: JobService, piper) -> None:
    job, created = await embedded.submit(JobSpec(kind="speak", text=TEXT, split=SPLIT, output_format="wav"))
    assert created and job.status == "queued" and job.segments_total >= 3
    job = await wait_final(embedded, job.id)
    assert job.status == "succeeded", job.error
    segs = await asyncio.to_thread(embedded.segments, job.id)
    planned = piper.segments(TEXT, VoiceParams(name=piper.default_voice), SplitParams(**SPLIT))
    assert [s.text for s in segs] == [p.text for p in planned]
    assert all(s.status == "done" and s.attempt == 1 for s in segs)
    for s in segs:  # each stored segment holds exactly the samples the row claims
        assert len(embedded.store.get(segment_key(job.id, s.index))) == 4 * s.num_samples
    audio, rate = decode(embedded.store.get(job.result["audio.wav"]))
    assert rate == piper.sample_rate
    overlap = int(0.02 * rate)
    assert len(audio) == sum(s.num_samples for s in segs) - overlap * (len(segs) - 1)
    p = embedded.progress(job)
    assert (p.segments_done, p.percent) == (len(segs), 100.0)
    assert p.audio_seconds == pytest.approx(sum(s.duration_s for s in segs), abs=1e-3)
    srt = embedded.store.get(job.result["subtitles.srt"]).decode()
    assert srt.count(" --> ") == len(segs) and segs[-1].text in srt


async def test_idempotent_resubmission_returns_the_same_job(jobs: JobService) -> None:
    spec = lambda: JobSpec(kind="speak", text="Hello there.")
    a, created_a = await jobs.submit(spec(), idempotency_key="key-1")
    b, created_b = await jobs.submit(spec(), idempotency_key="key-1")
    c, created_c = await jobs.submit(spec(), job_id="my-job")
    d, created_d = await jobs.submit(spec(), job_id="my-job")
    assert (created_a, created_b, created_c, created_d) == (True, False, True, False)
    assert a.id == b.id and c.id == d.id == "my-job"
    listed, total = await asyncio.to_thread(lambda: jobs.list(limit=1000))
    ids = [j.id for j in listed]  # the services database is shared with other tests: count ours
    assert total == len(ids) and ids.count(a.id) == 1 and ids.count("my-job") == 1


async def test_bad_requests_fail_at_submit(embedded: JobService) -> None:
    with pytest.raises(InvalidRequestError, match="output_format"):
        JobSpec(kind="speak", text="x", output_format="ogg-vorbis")
    with pytest.raises(InvalidRequestError, match="temperature"):
        JobSpec(kind="speak", text="x", sampling={"temperature": 99})
    with pytest.raises(UnsupportedFeatureError, match="clone"):
        await embedded.submit(JobSpec(kind="clone", text="x"), reference_audio=b"RIFF")
    with pytest.raises(InvalidRequestError, match="job id"):
        await embedded.submit(JobSpec(kind="speak", text="x"), job_id="../etc")
