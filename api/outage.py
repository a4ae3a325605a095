"""``Retry-After`` that follows an outage: exponential backoff over consecutive failures.

While the database, broker or object store is down every job request is a 503. A constant
``Retry-After: 1`` had every client hammer the server once a second for the whole outage; here the
first 503 of an outage says 1 s, each further one doubles it (up to :data:`MAX_RETRY_AFTER_S`), and
the first request that reaches the dependencies again (a job route or ``/ready`` answering below
500) ends the outage, so the next one starts at 1 s again.
"""

from __future__ import annotations

FIRST_RETRY_AFTER_S = 1
MAX_RETRY_AFTER_S = 60
"""A minute: long enough to spare a server in trouble, short enough to notice its recovery."""

OUTAGE_ROUTES = ("/v1/jobs", "/ready")
"""Route prefixes whose answers below 500 prove the dependencies answer again."""


class OutageBackoff:
    def __init__(self, first_s: int = FIRST_RETRY_AFTER_S, max_s: int = MAX_RETRY_AFTER_S) -> None:
        self.first_s = first_s
        self.max_s = max_s
        self.failures = 0

    def failed(self) -> int:
        """Record one more 503 of the current outage; the seconds its ``Retry-After`` says."""
        self.failures += 1
        return min(self.max_s, self.first_s * 2 ** min(self.failures - 1, 32))

    def answered(self, route: str, status: int) -> None:
        """A response went out: one below 500 from a route that uses the dependencies ends the outage."""
        if status < 500 and route.startswith(OUTAGE_ROUTES):
            self.failures = 0
