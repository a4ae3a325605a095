"""A directory as an object store: the embedded default (no S3 configured)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from fasttts.errors import NotFoundError
from fasttts.storage.base import StorageError, StorageUnavailableError


class LocalStore:
    """Objects are files under ``root``; writes are atomic (temp file + rename), so a reader never
    sees half an object and a crash mid-write leaves the previous version."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        """The file behind ``key`` (the API streams it); refuses keys that escape ``root``."""
        p = (self.root / key).resolve()
        if p != self.root and self.root not in p.parents:
            raise StorageError(f"storage key escapes the store: {key!r}")
        return p

    def put(self, key: str, data: bytes, content_type: str | None = None) -> None:
        p = self.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, p)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"stored object {key!r} not found") from None

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete_prefix(self, prefix: str) -> int:
        base = self.path(prefix)
        if base.is_dir():
            n = sum(1 for f in base.rglob("*") if f.is_file())
            shutil.rmtree(base, ignore_errors=True)
            return n
        return 0

    def url(self, key: str, expires_s: int = 3600, filename: str | None = None) -> str | None:
        return None

    def check(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise StorageUnavailableError(f"storage directory {self.root} is not writable")

    def close(self) -> None:
        """Nothing to release: every call opens and closes its own file."""
