"""Fetching reference audio by URL: the connection goes to the address that passed the check."""

from __future__ import annotations

import asyncio
import http.server
import ipaddress
import socket
import threading

import pytest
from api_fakes import FakeEngine, tone
from conftest import running
from limits_tools import TrickleServer

from api.reference import fetch_url
from fasttts.config import Settings

pytestmark = pytest.mark.asyncio

STAND_IN = "127.0.0.2"  # plays a public host: a loopback address this test declares global


@pytest.fixture
def stand_in_server():
    hosts: list[str] = []
    body = tone(0.2)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hosts.append(self.headers["Host"])
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((STAND_IN, 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], hosts, body
    server.shutdown()
    server.server_close()


async def test_a_url_is_fetched_from_the_address_that_was_checked(stand_in_server, monkeypatch, tmp_path):
    """DNS rebinding: the name resolves to a public address when checked and to a private one
    afterwards; the fetch must connect to the checked address (it never looks the name up again)."""
    port, hosts, body = stand_in_server
    lookups: list[str] = []

    async def getaddrinfo(host, port, **kwargs):
        lookups.append(host)
        address = STAND_IN if len(lookups) == 1 else "10.0.0.1"  # the second answer would lead inside
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    real_is_global = ipaddress.IPv4Address.is_global
    monkeypatch.setattr(ipaddress.IPv4Address, "is_global", property(lambda a: str(a) == STAND_IN or real_is_global.fget(a)))
    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    settings = Settings(data_dir=str(tmp_path))

    assert await fetch_url(f"http://voice.example:{port}/ref.wav", settings) == body
    assert lookups == ["voice.example"]  # looked up once, for the check
    assert hosts == [f"voice.example:{port}"]  # the server saw the URL's host name


async def test_a_trickling_reference_url_is_cut_off_at_the_deadline_with_a_4xx(settings):
    """A server that sends a byte every 0.2 s never trips a per-read timeout; the fetch's one
    overall deadline (``fetch_deadline_s``) ends it with a 422 naming the field."""
    quick = settings.model_copy(update={"allow_private_urls": True, "fetch_deadline_s": 1.0})
    with TrickleServer(interval_s=0.2, total_s=30) as slow:
        async with running(quick, FakeEngine()) as client:
            r = await client.post("/clone_voice", data={"text": "Hello.", "reference_audio": slow.url, "response_format": "wav"})
        assert r.status_code == 422 and r.json()["param"] == "reference_audio"
        assert "within 1 s" in r.json()["detail"]
        assert slow.served == 0


@pytest.mark.parametrize("url", ["http://[::1", "http://127.0.0.1:99999/x", "http://127.0.0.1:1/x"])
async def test_bad_reference_urls_are_4xx_naming_the_field(settings, url):
    async with running(settings, FakeEngine()) as client:
        r = await client.post("/v1/audio/voices", data={"name": "v", "reference_audio": url})
    assert r.status_code == 422 and r.json()["error"]["param"] == "reference_audio", r.text
