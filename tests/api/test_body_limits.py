"""Request bodies are capped before they are read (api.middleware.BodyLimitMiddleware): on their
Content-Length at once, and while they stream when they have none (chunked). Measured on a real
``fasttts serve`` process: its peak resident memory and its spooled temporary files stay small
while 300 MiB bodies and an EPUB zip bomb are thrown at it."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from api_fakes import FakeEngine
from conftest import running
from limits_tools import MiB, epub_bomb, open_file_bytes, peak_memory_growth

MAX_UPLOAD = 2 * MiB
MAX_JSON = 1 * MiB
HUGE = 300 * MiB
MEMORY_BOUND = 48 * MiB
"""Peak memory a refused request may add to the server: a few buffers, never the body."""
SPOOL_BOUND = MAX_UPLOAD + 2 * MiB
"""Spooled upload bytes allowed on disk: the upload cap and its form fields, never the body."""


@dataclass
class Server:
    url: str
    port: int
    pid: int
    spool: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``fasttts serve`` (the embedded Piper default) with small caps, its temporary files in a
    directory of its own, warmed up by one small request of each kind."""
    root = tmp_path_factory.mktemp("limits")
    (spool := root / "spool").mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        sys.executable,
        "-m",
        "fasttts.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data_dir",
        str(root / "data"),
        "--role_dir",
        str(root / "roles"),
        "--max_upload_bytes",
        str(MAX_UPLOAD),
        "--max_json_bytes",
        str(MAX_JSON),
        "--log_level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, env=os.environ | {"TMPDIR": str(spool)})
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=30) as c:
            for _ in range(600):
                try:
                    if c.get("/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                with pytest.raises(subprocess.TimeoutExpired):  # waits a little, and the server must not have exited
                    proc.wait(0.1)
            else:
                raise AssertionError("the server did not become ready")
            assert c.post("/v1/jobs", json={"kind": "speak", "text": "Warm up."}).status_code == 202
            assert (
                c.post(
                    "/v1/jobs", data={"request": json.dumps({"kind": "audiobook"})}, files={"file": ("b.txt", padded_book(MAX_UPLOAD // 2), "text/plain")}
                ).status_code
                == 202
            )
        yield Server(url, port, proc.pid, spool)
    finally:
        proc.terminate()
        proc.wait(30)


def padded_book(size: int) -> bytes:
    """A text book of ``size`` bytes that is one short sentence and blank lines (cheap to synthesise)."""
    text = b"Chapter 1\nA short book.\n"
    return text + b"\n" * (size - len(text))


def _multipart(boundary: str) -> tuple[bytes, bytes]:
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="request"\r\n\r\n{{"kind": "audiobook"}}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="book.txt"\r\n'
        f"Content-Type: text/plain\r\n\r\n"
    ).encode()
    return head, f"\r\n--{boundary}--\r\n".encode()


def _body(kind: str) -> tuple[str, Iterator[bytes]]:
    """(content type, 300 MiB of body in 1 MiB chunks)."""
    filler = b"a" * MiB
    if kind == "json":
        head, tail = b'{"kind": "speak", "text": "', b'"}'
        ctype = "application/json"
    else:
        head, tail = _multipart("XyZ")
        ctype = "multipart/form-data; boundary=XyZ"

    def chunks() -> Iterator[bytes]:
        yield head
        for _ in range((HUGE - len(head) - len(tail)) // MiB):
            yield filler
        yield tail

    return ctype, chunks()


def post_raw(port: int, path: str, ctype: str, chunks: Iterator[bytes], *, length: int | None, after_chunk: Callable[[], None]) -> tuple[int, dict, int]:
    """POST over a plain socket, with ``Content-Length: length`` or chunked when None; the body is
    sent only while the server has not answered. Returns (status, JSON body, body bytes sent)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\n{framing}\r\n\r\n".encode())
    sent = 0
    try:
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:
                break  # the server answered: stop sending
            sock.sendall(chunk if length is not None else b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
            after_chunk()
        else:
            if length is None:
                sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and hung up mid-body
    response = b""
    try:
        while b"\r\n\r\n" not in response or len(response.split(b"\r\n\r\n", 1)[1]) < _length(response):
            if not (data := sock.recv(65536)):
                break
            response += data
    finally:
        sock.close()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body), sent


def _length(response: bytes) -> int:
    for line in response.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize(
    ("kind", "path", "setting"),
    [
        ("json", "/v1/jobs", "max_json_bytes"),
        ("upload", "/v1/jobs", "max_upload_bytes"),
        ("upload", "/v1/audio/voices", "max_upload_bytes"),
    ],
)
def test_a_300_mib_body_is_refused_before_it_is_read(server: Server, kind: str, path: str, setting: str, framing: str) -> None:
    ctype, chunks = _body(kind)
    spooled = [0]

    def probe() -> None:
        spooled[0] = max(spooled[0], open_file_bytes(server.pid, server.spool))

    with peak_memory_growth(server.pid) as growth:
        status, body, sent = post_raw(server.port, path, ctype, chunks, length=HUGE if framing == "content-length" else None, after_chunk=probe)
    assert status == 413, body
    assert body["error"]["param"] == "body" and body["error"]["code"] == "payload_too_large" and setting in body["error"]["message"]
    assert sent < HUGE / 4  # answered long before the body was through
    assert growth() < MEMORY_BOUND, f"peak memory grew {growth() / MiB:.0f} MiB"
    assert spooled[0] <= SPOOL_BOUND, f"{spooled[0] / MiB:.0f} MiB spooled"
    assert httpx.get(f"{server.url}/health").status_code == 200


def test_an_epub_zip_bomb_is_refused_before_it_is_unpacked(server: Server) -> None:
    bomb = epub_bomb(256 * MiB)
    assert len(bomb) < MAX_UPLOAD
    with peak_memory_growth(server.pid) as growth:
        r = httpx.post(
            f"{server.url}/v1/jobs",
            data={"request": json.dumps({"kind": "audiobook"})},
            files={"file": ("book.epub", bomb, "application/epub+zip")},
            timeout=60,
        )
    assert r.status_code == 413 and r.json()["error"]["param"] == "file" and "unpacks to" in r.json()["error"]["message"]
    assert growth() < MEMORY_BOUND, f"peak memory grew {growth() / MiB:.0f} MiB"


def test_bodies_under_the_caps_pass(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        padded = b'{"kind": "speak", "text": "Under the cap."' + b" " * (MAX_JSON - 100) + b"}"
        assert c.post("/v1/jobs", content=padded, headers={"Content-Type": "application/json"}).status_code == 202
        r = c.post("/v1/jobs", data={"request": json.dumps({"kind": "audiobook"})}, files={"file": ("b.txt", padded_book(MAX_UPLOAD - 1000), "text/plain")})
        assert r.status_code == 202, r.text


@pytest.mark.asyncio
@pytest.mark.parametrize("chunked", [False, True])
async def test_native_routes_answer_413_in_their_own_shape(settings, chunked: bool) -> None:
    body = b'{"name": "female", "text": "' + b"a" * 4096 + b'"}'

    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    async with running(settings.model_copy(update={"max_json_bytes": 2048}), FakeEngine()) as client:
        r = await client.post("/speak", content=stream() if chunked else body, headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and r.json()["param"] == "body" and "max_json_bytes" in r.json()["detail"]
        assert len(r.headers["x-request-id"]) >= 16
        ok = await client.post("/speak", json={"name": "female", "text": "Short.", "response_format": "wav"})
        assert ok.status_code == 200
