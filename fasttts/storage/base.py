"""The object-store protocol and the key layout every store shares.

Keys are derived only from job id, segment index and artifact name, never from attempts or times,
so a retried segment or a re-assembled job overwrites its earlier object instead of adding one.
Stores are synchronous (boto3 is); async callers wrap them in ``asyncio.to_thread``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from fasttts.errors import FastTTSError, NotReadyError


class StorageError(FastTTSError):
    """A storage operation failed for a reason other than the service being unreachable."""


class StorageUnavailableError(NotReadyError):
    """The object store cannot be reached right now (HTTP 503 with Retry-After)."""


@runtime_checkable
class ObjectStore(Protocol):
    def put(self, key: str, data: bytes, content_type: str | None = None) -> None: ...

    def get(self, key: str) -> bytes:
        """The object's bytes; :class:`~fasttts.errors.NotFoundError` if there is none."""
        ...

    def delete(self, key: str) -> None:
        """Remove one object; missing objects are not an error."""
        ...

    def exists(self, key: str) -> bool: ...

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object under ``prefix``; returns how many were removed."""
        ...

    def url(self, key: str, expires_s: int = 3600, filename: str | None = None) -> str | None:
        """A URL a client can download from directly, or ``None`` when the API must stream it."""
        ...

    def check(self) -> None:
        """Raise :class:`StorageUnavailableError` if the store cannot be used now."""
        ...

    def close(self) -> None:
        """Release the store's connections (at shutdown; the store is not used afterwards)."""
        ...


def job_prefix(job_id: str) -> str:
    return f"jobs/{job_id}/"


def segment_key(job_id: str, index: int) -> str:
    """Raw float32 little-endian PCM of one finished segment."""
    return f"{job_prefix(job_id)}segments/{index:06d}.f32"


def result_key(job_id: str, name: str) -> str:
    """An assembled artifact, e.g. ``audio.mp3``, ``book.m4b``, ``chapters/001.mp3``, ``subtitles.srt``."""
    return f"{job_prefix(job_id)}result/{name}"


def voice_key(name: str, version: str) -> str:
    """A stored voice's reference audio; ``version`` is unique per creation, so a voice deleted and
    created again (perhaps on another API replica) never shares a key with its predecessor."""
    return f"voices/{name}/{version}/reference"
