"""The outbound-URL policy (fasttts.net) that reference fetches and webhooks share: schemes,
private addresses, malformed URLs, the connection pinned to the checked address, the overall deadline."""

from __future__ import annotations

import asyncio
import http.server
import ipaddress
import socket
import threading

import pytest
from limits_tools import TrickleServer

from fasttts import net
from fasttts.errors import InvalidRequestError, PayloadTooLargeError

pytestmark = pytest.mark.asyncio

STAND_IN = "127.0.0.3"  # plays a public host: a loopback address these tests declare global


@pytest.fixture
def echo_server():
    """Answers 200 with a fixed body; records each request's Host header."""
    hosts: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            hosts.append(self.headers["Host"])
            self.send_response(200)
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.write(b"hello")

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((STAND_IN, 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], hosts
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("file:///etc/passwd", "only http"),
        ("ftp://example.com/x", "only http"),
        ("gopher://127.0.0.1:6379/_", "only http"),
        ("http://[::1", "not a valid URL"),
        ("http://127.0.0.1:99999/x", "not a valid URL"),
        ("http:///nohost", "no host"),
        ("http://127.0.0.1/x", "non-public"),
        ("http://localhost:6379/", "non-public"),
        ("http://[::1]:80/", "non-public"),
        ("http://10.1.2.3/", "non-public"),
        ("http://169.254.169.254/latest/meta-data/", "non-public"),
        ("http://0x7f000001/", "non-public"),
    ],
)
async def test_the_policy_refuses_naming_the_field(url: str, problem: str) -> None:
    with pytest.raises(InvalidRequestError, match=problem) as at_check:
        await asyncio.to_thread(net.check_url, url, allow_private=False, param="webhook_url")
    with pytest.raises(InvalidRequestError, match=problem) as at_connect:
        await net.request("GET", url, allow_private=False, param="webhook_url", deadline_s=2, max_bytes=100)
    for caught in (at_check, at_connect):
        assert caught.value.param == "webhook_url" and caught.value.message.startswith("webhook_url: ")


async def test_private_addresses_are_allowed_with_the_flag_but_schemes_never(echo_server) -> None:
    port, _ = echo_server
    url = f"http://{STAND_IN}:{port}/x"
    net.check_url(url, allow_private=True, param="p")
    assert (await net.request("GET", url, allow_private=True, param="p", deadline_s=5, max_bytes=100)).body == b"hello"
    with pytest.raises(InvalidRequestError, match="only http"):
        net.check_url("file:///etc/passwd", allow_private=True, param="p")


async def test_the_connection_goes_to_the_checked_address(echo_server, monkeypatch) -> None:
    """DNS rebinding: the name resolves to a public address when checked and to a private one
    afterwards; the request must connect to the checked address, never looking the name up again."""
    port, hosts = echo_server
    lookups: list[str] = []

    async def getaddrinfo(self, host, port, **kwargs):
        lookups.append(host)
        address = STAND_IN if len(lookups) == 1 else "10.0.0.1"  # the second answer would lead inside
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    real_is_global = ipaddress.IPv4Address.is_global
    monkeypatch.setattr(ipaddress.IPv4Address, "is_global", property(lambda a: str(a) == STAND_IN or real_is_global.fget(a)))
    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", getaddrinfo)
    reply = await net.request("POST", f"http://hooks.example:{port}/h", allow_private=False, param="webhook_url", deadline_s=5, max_bytes=None, content=b"{}")
    assert reply.status == 200
    assert lookups == ["hooks.example"] and hosts == [f"hooks.example:{port}"]


async def test_the_answer_is_capped_in_bytes(echo_server) -> None:
    port, _ = echo_server
    with pytest.raises(PayloadTooLargeError, match="larger than 4 bytes"):
        await net.request("GET", f"http://{STAND_IN}:{port}/x", allow_private=True, param="p", deadline_s=5, max_bytes=4)


async def test_one_deadline_cuts_off_a_server_that_trickles() -> None:
    """Every byte comes well within any per-read timeout, the whole answer would take 30 s."""
    with TrickleServer(interval_s=0.2, total_s=30) as slow:
        with pytest.raises(net.UnreachableURLError, match="within 1 s") as caught:
            await net.request("GET", slow.url, allow_private=True, param="reference_audio", deadline_s=1, max_bytes=1000)
        assert caught.value.param == "reference_audio"
        await asyncio.to_thread(slow.cut.wait, 10)
        assert slow.cut.is_set() and slow.served == 0  # the client went away; nothing was served in full
