"""Object storage for segment audio, job results and voice references: S3 or a local directory."""

from __future__ import annotations

from fasttts.config import Settings
from fasttts.storage.base import (
    ObjectStore,
    StorageError,
    StorageUnavailableError,
    job_prefix,
    result_key,
    segment_key,
    voice_key,
)
from fasttts.storage.local import LocalStore


def store_from_settings(settings: Settings) -> ObjectStore:
    """S3 when ``s3_bucket`` is set, else a directory ``<data_dir>/objects``."""
    if settings.s3_bucket:
        from fasttts.storage.s3 import S3Store

        return S3Store(
            settings.s3_bucket,
            prefix=settings.s3_prefix,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=settings.s3_secret_access_key,
        )
    return LocalStore(settings.data_dir / "objects")


__all__ = [
    "LocalStore",
    "ObjectStore",
    "StorageError",
    "StorageUnavailableError",
    "job_prefix",
    "result_key",
    "segment_key",
    "store_from_settings",
    "voice_key",
]
