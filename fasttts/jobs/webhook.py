"""Completion webhooks signed with HMAC-SHA256.

The receiver recomputes ``HMAC(secret, f"{timestamp}.{body}")`` and compares it to the
``X-FastTTS-Signature`` header (``sha256=<hex>``); the timestamp is signed too, so an old delivery
cannot be replayed with a fresh timestamp. Deliveries follow the same outbound-URL policy as
reference-audio fetches (:mod:`fasttts.net`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from typing import Any

from fasttts import net
from fasttts.errors import InvalidRequestError

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-FastTTS-Signature"
TIMESTAMP_HEADER = "X-FastTTS-Timestamp"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str, *, tolerance_s: float = 300.0) -> bool:
    """What a receiver does: constant-time compare, and reject stale timestamps."""
    if abs(time.time() - float(timestamp)) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def deliver(url: str, payload: dict[str, Any], *, secret: str | None, allow_private: bool, deadline_s: float, attempts: int = 3) -> str:
    """POST ``payload``; retries with backoff; returns a short status for ``jobs.webhook_status``.

    Blocking (run it in a thread, as the runner does). Each attempt follows the outbound-URL
    policy of :mod:`fasttts.net` (the URL was checked at submit, and is checked again here because
    DNS answers change) and is cut off at ``deadline_s``. A URL the policy refuses is not retried."""
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    last = ""
    for attempt in range(attempts):
        ts = str(int(time.time()))
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: ts}
        if secret:
            headers[SIGNATURE_HEADER] = sign(secret, ts, body)
        try:
            reply = asyncio.run(
                net.request("POST", url, allow_private=allow_private, param="webhook_url", deadline_s=deadline_s, max_bytes=None, content=body, headers=headers)
            )
            if reply.status < 300:
                return f"delivered {reply.status}"
            last = f"http {reply.status}"
        except net.UnreachableURLError as e:
            last = e.message.removeprefix("webhook_url: ")
        except InvalidRequestError as e:
            logger.warning("webhook %s refused: %s", url, e.message)
            return f"refused: {e.message.removeprefix('webhook_url: ')}"[:64]
        logger.warning("webhook %s attempt %d failed: %s", url, attempt + 1, last)
        if attempt + 1 < attempts:
            time.sleep(min(2.0**attempt, 10.0))
    return f"failed: {last}"[:64]
