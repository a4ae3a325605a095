"""Audiobook end to end, cancel, delete and TTL expiry, with the Piper voice, on the embedded
default and on PostgreSQL + SeaweedFS S3 (signed webhooks: test_webhooks.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import io

import av
import pytest
from conftest import deployment_settings, wait_final
from service_fixtures import create_pg_database, drop_pg_database

from fasttts.audio.m4b import read_chapters
from fasttts.errors import NotFoundError
from fasttts.jobs import JobSpec, build_job_service
from fasttts.storage import segment_key

pytestmark = pytest.mark.asyncio(loop_scope="session")

CHAPTERS = [
    ("The Harbour", ["The boats came in at dawn.", "Gulls followed them, crying loudly over the water."]),
    ("The Market", ["By noon the square was full.", "Everyone wanted fish, bread and news."]),
    ("The Night", ["When the lamps were lit, the town grew quiet.", "Only the sea kept talking."]),
]


def make_epub() -> bytes:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("fasttts-test")
    book.set_title("A Small Town")
    book.set_language("en")
    items = []
    for i, (title, paras) in enumerate(CHAPTERS, 1):
        item = epub.EpubHtml(title=title, file_name=f"ch{i}.xhtml", lang="en")
        item.content = f"<html><body><h1>{title}</h1>" + "".join(f"<p>{p}</p>" for p in paras) + "</body></html>"
        book.add_item(item)
        items.append(item)
    book.toc = items
    book.spine = items
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    buf = io.BytesIO()
    epub.write_epub(buf, book)
    return buf.getvalue()


def duration_s(data: bytes) -> float:
    with av.open(io.BytesIO(data)) as c:
        return sum(f.samples for f in c.decode(audio=0)) / c.streams.audio[0].rate


async def test_epub_audiobook_gives_audio_chapters_m4b_and_subtitles(jobs, piper) -> None:
    spec = JobSpec(kind="audiobook", output_format="mp3", split={"length_threshold": 12, "window_size": 12})
    job, _ = await jobs.submit(spec, book=make_epub(), filename="town.epub")
    job = await wait_final(jobs, job.id)
    assert job.status == "succeeded", job.error
    segs = await asyncio.to_thread(jobs.segments, job.id)
    assert sorted({s.chapter for s in segs}) == [0, 1, 2]
    # every sentence of the book is in exactly one segment, in order: nothing dropped or duplicated
    spoken = " ".join(s.text for s in segs)
    for _, paras in CHAPTERS:
        for p in paras:
            assert spoken.count(p.rstrip(".")) == 1, p
    assert all(s.attempt == 1 for s in segs)
    store, result = jobs.store, job.result
    chapter_files = sorted(k for k in result if k.startswith("chapters/"))
    assert chapter_files == ["chapters/001.mp3", "chapters/002.mp3", "chapters/003.mp3"]
    for c, name in enumerate(chapter_files):  # each chapter file is as long as its segments
        expected = sum(s.duration_s for s in segs if s.chapter == c)
        assert duration_s(store.get(result[name])) == pytest.approx(expected, abs=0.15)
    marks = read_chapters(io.BytesIO(store.get(result["book.m4b"])))
    assert [m[0] for m in marks] == [t for t, _ in CHAPTERS]
    assert marks[-1][2] == pytest.approx(sum(s.duration_s for s in segs), abs=0.3)
    assert duration_s(store.get(result["audio.mp3"])) == pytest.approx(job.audio_seconds, abs=0.3)
    vtt = store.get(result["subtitles.vtt"]).decode()
    assert vtt.startswith("WEBVTT") and vtt.count(" --> ") == len(segs)


async def test_cancel_stops_a_running_job_promptly(jobs) -> None:
    long_text = " ".join(f"Sentence number {i} is spoken here." for i in range(60))
    job, _ = await jobs.submit(JobSpec(kind="speak", text=long_text, split={"length_threshold": 8, "window_size": 8}))
    await asyncio.wait_for(jobs.engine.synthesised.wait(), 60)  # the job is running: its first segment was spoken
    await asyncio.to_thread(jobs.cancel, job.id)
    await asyncio.wait_for(jobs.dispatcher.join(), 120)  # the runner gave the job up (the timeout only guards a hang)
    segs = await asyncio.to_thread(jobs.segments, job.id)
    job = await asyncio.to_thread(jobs.get, job.id)
    assert job.status == "cancelled" and job.result is None
    assert sum(s.status == "done" for s in segs) < len(segs)  # it stopped, rather than ran to the end
    assert not any(s.status == "running" for s in segs)


async def test_delete_removes_job_and_audio(jobs) -> None:
    job, _ = await jobs.submit(JobSpec(kind="speak", text="Delete me soon."))
    job = await wait_final(jobs, job.id)
    segs = await asyncio.to_thread(jobs.segments, job.id)
    keys = [segment_key(job.id, seg.index) for seg in segs] + list(job.result.values())
    assert keys and all(jobs.store.exists(k) for k in keys)
    await asyncio.to_thread(jobs.delete, job.id)
    assert not any(jobs.store.exists(k) for k in keys)
    with pytest.raises(NotFoundError):
        await asyncio.to_thread(jobs.get, job.id)
    assert await asyncio.to_thread(jobs.segments, job.id) == []


@pytest.mark.parametrize("kind", ["embedded", "services"])
async def test_results_expire_after_ttl(kind, tmp_path, piper, request) -> None:
    settings = deployment_settings(kind, tmp_path, request, job_result_ttl_s=1)
    if kind == "services":  # a database of its own: the session's holds other tests' finished jobs
        settings = settings.model_copy(update={"database_url": create_pg_database()})
    service = build_job_service(settings, piper)
    await service.start(maintain=False)  # this test expires, not the maintenance loop
    try:
        job, _ = await service.submit(JobSpec(kind="speak", text="Short lived."))
        job = await wait_final(service, job.id)
        assert job.status == "succeeded" and service.store.exists(job.result["audio.mp3"])
        assert job.expires_at is not None and job.expires_at - job.finished_at == dt.timedelta(seconds=1)
        assert await asyncio.to_thread(service.expire, job.expires_at - dt.timedelta(milliseconds=1)) == 0  # not yet
        assert await asyncio.to_thread(service.expire, job.expires_at + dt.timedelta(milliseconds=1)) == 1
        assert not service.store.exists(job.result["audio.mp3"])
        with pytest.raises(NotFoundError):
            await asyncio.to_thread(service.get, job.id)
    finally:
        await service.stop()
        if kind == "services":
            drop_pg_database(settings.database_url)
