"""Admission control: at most ``max_concurrency`` synthesis requests in flight, else 429.

Rejecting at once (rather than queueing without bound) keeps latency honest under overload and
tells clients, through ``Retry-After``, when to come back.
"""

from __future__ import annotations

from fasttts.errors import CapacityError


class Slot:
    """One admitted request; :meth:`release` is idempotent so every exit path may call it."""

    def __init__(self, limiter: ConcurrencyLimiter) -> None:
        self._limiter = limiter
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._limiter.in_flight -= 1


class ConcurrencyLimiter:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0

    def acquire(self) -> Slot:
        if self.in_flight >= self.limit:
            raise CapacityError(f"server is at capacity ({self.limit} synthesis requests in flight); retry shortly")
        self.in_flight += 1
        return Slot(self)
