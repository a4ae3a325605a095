"""Prometheus metrics of one app instance (own registry, so several apps can live in one process).

HTTP counters are fed by :class:`api.middleware.RequestContextMiddleware`; audio counters by the
response streamers in :mod:`api.audio`; engine gauges (active, queued, batch occupancy) are read
from the engine at scrape time by a custom collector, so they can never drift from the truth.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from fasttts.engine.base import TTSEngine
from fasttts.engine.batcher import MicroBatcher

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class _EngineCollector(Collector):
    def __init__(self, engine: Callable[[], TTSEngine | None], in_flight: Callable[[], int]) -> None:
        self._engine = engine
        self._in_flight = in_flight

    def collect(self) -> Iterator[GaugeMetricFamily]:
        engine = self._engine()
        active = engine.num_active if engine is not None else 0
        yield GaugeMetricFamily("fasttts_active_requests", "Requests producing audio in the engine.", value=active)
        yield GaugeMetricFamily("fasttts_queued_requests", "Admitted synthesis requests not yet producing audio.", value=max(0, self._in_flight() - active))
        occupancy = GaugeMetricFamily("fasttts_batch_occupancy", "Mean items per batch of each codec micro-batcher.", labels=["batcher"])
        for name, batcher in _batchers(engine):
            occupancy.add_metric([name], batcher.mean_occupancy)
        yield occupancy


def _batchers(engine: TTSEngine | None) -> Iterator[tuple[str, MicroBatcher]]:
    """Micro-batchers the engine holds directly or one level down (e.g. on its codec)."""
    if engine is None:
        return
    seen: set[int] = set()
    for owner in [engine, *vars(engine).values()]:
        for value in getattr(owner, "__dict__", {}).values():
            if isinstance(value, MicroBatcher) and id(value) not in seen:
                seen.add(id(value))
                yield value.name, value


class Metrics:
    def __init__(self, engine: Callable[[], TTSEngine | None], in_flight: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("fasttts_http_requests", "HTTP requests by route and status.", ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram(
            "fasttts_http_request_duration_seconds", "Time until the response body is complete.", ["route"], buckets=LATENCY_BUCKETS, registry=self.registry
        )
        self.audio_seconds = Counter("fasttts_audio_seconds", "Seconds of audio sent to clients.", ["route"], registry=self.registry)
        self.first_audio = Histogram(
            "fasttts_time_to_first_audio_seconds",
            "Time from request start to the first audio chunk.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_EngineCollector(engine, in_flight))

    def render(self) -> bytes:
        return generate_latest(self.registry)
