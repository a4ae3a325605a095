"""Completion webhooks signed with HMAC-SHA256.

The receiver recomputes ``HMAC(secret, f"{timestamp}.{body}")`` and compares it to the
``X-FastTTS-Signature`` header (``sha256=<hex>``); the timestamp is signed too, so an old delivery
cannot be replayed with a fresh timestamp.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from typing import Any

import httpx

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


def deliver(url: str, payload: dict[str, Any], secret: str | None, *, attempts: int = 3, timeout_s: float = 10.0) -> str:
    """POST ``payload``; retries with backoff; returns a short status for ``jobs.webhook_status``."""
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    last = ""
    for attempt in range(attempts):
        ts = str(int(time.time()))
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: ts}
        if secret:
            headers[SIGNATURE_HEADER] = sign(secret, ts, body)
        try:
            r = httpx.post(url, content=body, headers=headers, timeout=timeout_s)
            if r.status_code < 300:
                return f"delivered {r.status_code}"
            last = f"http {r.status_code}"
        except httpx.HTTPError as e:
            last = f"error {type(e).__name__}"
        logger.warning("webhook %s attempt %d failed: %s", url, attempt + 1, last)
        time.sleep(min(2.0**attempt, 10.0))
    return f"failed: {last}"[:64]
