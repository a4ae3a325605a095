"""Per-request context (an ``X-Request-ID`` on every response, one structured access-log line,
the HTTP metrics) and the cap on request bodies.

Pure ASGI (not ``BaseHTTPMiddleware``) so streaming bodies pass straight through and a client
disconnect still reaches the response, which is what cancels generation.
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import BodyTooLargeError, body_too_large_response
from api.metrics import Metrics
from api.outage import OutageBackoff

logger = logging.getLogger("fasttts.access")

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
"""The current request's id, for log records emitted anywhere below the HTTP layer."""

_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, backoff: OutageBackoff) -> None:
        self.app = app
        self.metrics = metrics
        self.backoff = backoff

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _VALID_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        start = time.perf_counter()
        status = 500
        finished = False
        status_sent = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, finished, status_sent
            if message["type"] == "http.response.start":
                status, status_sent = message["status"], True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                finished = True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            if status_sent:
                raise  # mid-body: let the server cut the connection, so the truncation is visible
            logger.exception("unhandled error")
            await self._internal_error(scope, send_wrapper)
        finally:
            self._record(scope, status if finished else (status if status != 200 else 499), time.perf_counter() - start, request_id)
            request_id_var.reset(token)

    @staticmethod
    async def _internal_error(scope: Scope, send: Send) -> None:
        """A bug is still answered as JSON (OpenAI's shape on /v1) carrying the request id."""
        message = "internal server error"
        if scope["path"].startswith("/v1/"):
            body: dict[str, object] = {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
        else:
            body = {"detail": message}
        await JSONResponse(body, status_code=500)(scope, _no_receive, send)

    def _record(self, scope: Scope, status: int, elapsed: float, request_id: str) -> None:
        route = getattr(scope.get("route"), "path", None) or ("/static" if scope["path"].startswith("/static/") else "unmatched")
        method = scope["method"]
        self.metrics.requests.labels(method, route, str(status)).inc()
        self.backoff.answered(route, status)
        self.metrics.latency.labels(route).observe(elapsed)
        logger.info(
            "%s %s %d %.1fms",
            method,
            scope["path"],
            status,
            elapsed * 1000,
            extra={
                "request_id": request_id,
                "method": method,
                "path": scope["path"],
                "route": route,
                "status": status,
                "duration_ms": round(elapsed * 1000, 1),
            },
        )


FORM_FIELDS_BYTES = 1024 * 1024
"""What a multipart body may carry beside its reference or book: the other fields and the part
boundaries."""


def body_caps(max_upload_bytes: int, max_json_bytes: int) -> tuple[int, int]:
    """(multipart cap, any other body's cap). A multipart body has room for an upload of
    ``max_upload_bytes`` sent either as a file or as a base64 text field (4/3 larger), so the
    route's own check, which names the field, refuses a larger reference rather than this cap."""
    base64_upload = 4 * -(-max_upload_bytes // 3)
    return base64_upload + FORM_FIELDS_BYTES, max_json_bytes


class BodyLimitMiddleware:
    """Caps every request body before the app reads it, so no body, however sent, lands whole in
    memory or in a spooled temporary file before its size is judged.

    The cap depends on the body's kind (:func:`body_caps`): a multipart upload may be
    ``max_upload_bytes`` (as base64 if so sent) plus its form fields, anything else (JSON, a
    url-encoded form) ``max_json_bytes``. A declared ``Content-Length`` above the
    cap is answered 413 before a byte is read (nor is ``100 Continue`` sent); a body without one
    (chunked) is cut off as soon as it passes the cap: the app's next read raises
    :class:`~api.errors.BodyTooLargeError`, answered 413 by the app's error handlers."""

    def __init__(self, app: ASGIApp, *, max_upload_bytes: int, max_json_bytes: int) -> None:
        self.app = app
        upload, other = body_caps(max_upload_bytes, max_json_bytes)
        self.upload = (upload, "max_upload_bytes")
        self.json = (other, "max_json_bytes")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        multipart = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower() == b"multipart/form-data"
        limit, setting = self.upload if multipart else self.json
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await body_too_large_response(Request(scope), BodyTooLargeError(limit, setting))(scope, _no_receive, send)
            return
        received = 0

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(limit, setting)
            return message

        await self.app(scope, capped_receive, send)
