"""Job webhooks: HMAC-signed, and under the same outbound-URL policy as reference audio (fasttts.net)
at submit and again at delivery, with one deadline per delivery attempt."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import pytest_asyncio
from conftest import deployment_settings, wait_final
from limits_tools import TrickleServer
from test_api import client

from fasttts.errors import InvalidRequestError
from fasttts.jobs import JobService, JobSpec, build_job_service
from fasttts.jobs.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, deliver, verify

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """A webhook receiver on 127.0.0.1: (its URL, the (headers, body) of each POST it got)."""
    got: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append((dict(self.headers), self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", got
    server.shutdown()
    server.server_close()


@pytest_asyncio.fixture(params=["embedded", "services"])
async def private_ok(request: pytest.FixtureRequest, tmp_path, piper) -> AsyncIterator[JobService]:
    """A job service with ``--allow_private_urls``, on each deployment."""
    service = build_job_service(deployment_settings(request.param, tmp_path, request, allow_private_urls=True), piper)
    await service.start()
    yield service
    await service.stop()


async def test_webhook_is_signed_with_hmac(private_ok, receiver) -> None:
    url, got = receiver
    job, _ = await private_ok.submit(JobSpec(kind="speak", text="Call me back."), webhook_url=url)
    job = await wait_final(private_ok, job.id)  # the run that finished it also delivered and recorded the webhook
    assert job.webhook_status == "delivered 204"
    [(headers, body)] = [(h, b) for h, b in got if json.loads(b)["id"] == job.id]
    assert json.loads(body)["status"] == "succeeded"
    assert verify("s3cret", headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
    assert not verify("wrong", headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
    assert not verify("s3cret", headers[TIMESTAMP_HEADER], body + b" ", headers[SIGNATURE_HEADER])


@pytest.mark.parametrize(
    ("hook", "problem"),
    [
        ("file:///etc/passwd", "only http"),
        ("gopher://127.0.0.1:6379/_", "only http"),
        ("http://[::1", "not a valid URL"),
        ("RECEIVER", "non-public"),
        ("http://169.254.169.254/latest/meta-data/", "non-public"),
    ],
)
async def test_webhook_urls_are_refused_at_submit(embedded, receiver, hook: str, problem: str) -> None:
    url, got = receiver
    async with client(embedded) as c:
        r = await c.post("/v1/jobs", json={"kind": "speak", "text": "Hi.", "webhook_url": url if hook == "RECEIVER" else hook})
        assert r.status_code == 422 and r.json()["error"]["param"] == "webhook_url", r.text
        assert problem in r.json()["error"]["message"]
        assert (await c.get("/v1/jobs")).json()["total"] == 0
    assert got == []


async def test_library_submit_checks_the_webhook_too(embedded) -> None:
    with pytest.raises(InvalidRequestError, match="only http") as caught:
        await embedded.submit(JobSpec(kind="speak", text="Hi."), webhook_url="file:///etc/passwd")
    assert caught.value.param == "webhook_url"


async def test_a_delivery_checks_the_url_again(receiver) -> None:
    """A job whose URL passed at submit is refused at delivery if the policy says no now (the
    operator turned ``--allow_private_urls`` off, or the name resolves elsewhere)."""
    url, got = receiver
    status = await asyncio.to_thread(deliver, url, {"id": "j"}, secret="k", allow_private=False, deadline_s=5)
    assert status.startswith("refused: ") and "non-public" in status and len(status) <= 64
    assert got == []
    assert await asyncio.to_thread(deliver, url, {"id": "j"}, secret="k", allow_private=True, deadline_s=5) == "delivered 204"
    [(headers, body)] = got
    assert json.loads(body) == {"id": "j"} and verify("k", headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])


async def test_a_trickling_receiver_is_cut_off_at_the_deadline() -> None:
    with TrickleServer(interval_s=0.2, total_s=30) as slow:
        status = await asyncio.to_thread(deliver, slow.url, {"id": "j"}, secret=None, allow_private=True, deadline_s=1, attempts=1)
        assert status == "failed: no complete answer from the URL within 1 s"
        assert slow.served == 0
