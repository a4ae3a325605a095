"""Fixtures for the HTTP layer: a scriptable fake engine, the real Piper engine, apps with their
lifespan running (ASGI client) and a real uvicorn server on 127.0.0.1 in its own thread."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from api_fakes import FakeEngine
from service_fixtures import free_port

from api.app import create_app
from fasttts.config import Settings
from fasttts.engine.base import TTSEngine


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", role_dir=str(tmp_path / "roles"), model_name="fasttts-test")


@pytest.fixture(scope="session")
def piper_engine() -> TTSEngine:
    from fasttts.models.piper.engine import PiperEngine

    return PiperEngine.load()


@asynccontextmanager
async def running(settings: Settings, engine: TTSEngine) -> AsyncIterator[httpx.AsyncClient]:
    """An app with its lifespan running and the model ready, and an ASGI client on it."""
    app = create_app(settings, engine)
    async with app.router.lifespan_context(app):
        await app.state.loading
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


@pytest.fixture
async def fake_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running(settings, FakeEngine()) as client:
        yield client


@pytest.fixture
async def piper_client(settings: Settings, piper_engine: TTSEngine) -> AsyncIterator[httpx.AsyncClient]:
    async with running(settings, piper_engine) as client:
        yield client


@dataclass
class LiveServer:
    url: str
    port: int
    app: Any
    loop: asyncio.AbstractEventLoop


@contextmanager
def live_server(settings: Settings, engine: TTSEngine) -> Iterator[LiveServer]:
    """uvicorn on 127.0.0.1 (a free port) in a thread with its own event loop."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(settings, engine)
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, timeout_graceful_shutdown=2, lifespan="on"))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=lambda: loop.run_until_complete(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        threading.Event().wait(0.05)
    else:
        raise RuntimeError("test server did not become ready")
    try:
        yield LiveServer(url, port, app, loop)
    finally:
        server.should_exit = True
        thread.join(10)
        loop.close()
        sock.close()


REPO = Path(__file__).resolve().parents[2]


@dataclass
class ServedProcess:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        """The process still runs and answers /health."""
        if self.proc.poll() is not None:
            return False
        try:
            return httpx.get(f"{self.url}/health", timeout=10).status_code == 200
        except httpx.HTTPError:
            return False


@contextmanager
def served(tmp_path: Path, *flags: str, ready_timeout_s: float = 180.0) -> Iterator[ServedProcess]:
    """``python server.py FLAGS`` in its own process on a free port (data under ``tmp_path``):
    a crash kills that process, never the test run, and the test can see it died."""
    port = free_port()
    log = tmp_path / f"server-{port}.log"
    args = [
        sys.executable,
        str(REPO / "server.py"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data_dir",
        str(tmp_path / "data"),
        "--role_dir",
        str(tmp_path / "roles"),
        "--log_format",
        "text",
        *flags,
    ]
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    with open(log, "ab") as out:
        proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = ServedProcess(f"http://127.0.0.1:{port}", proc, log)
    try:
        pause = threading.Event()  # never set: wait() is a plain poll interval
        for _ in range(int(ready_timeout_s / 0.1)):
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{server.url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            pause.wait(0.1)
        else:
            raise RuntimeError(f"server did not become ready: {log.read_text()[-2000:]}")
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
