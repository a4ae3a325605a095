"""``GET /metrics`` answers 200 on every model the server serves (issue #16: it answered 500 on
every call on a Spark server, because the batchers' ``mean_occupancy`` property was called). Spark's
check lives beside its other HTTP tests (tests/api/test_api_spark.py), which share its engine."""

from __future__ import annotations

import pytest
from conftest import running

from fasttts.config import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")


def occupancy(text: str) -> dict[str, float]:
    """Batcher name -> mean occupancy, from the Prometheus text."""
    prefix = 'fasttts_batch_occupancy{batcher="'
    return {line[len(prefix) :].split('"', 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)}


async def test_metrics_on_piper(piper_client):
    assert (await piper_client.post("/speak", json={"name": "joe", "text": "Hello.", "response_format": "wav"})).status_code == 200
    r = await piper_client.get("/metrics")
    assert r.status_code == 200 and 'fasttts_http_requests_total{method="POST",route="/speak",status="200"} 1.0' in r.text


@pytest.mark.slow
async def test_metrics_on_orpheus(settings: Settings, tmp_path):
    from fasttts.models.orpheus.random_model import write_random_orpheus
    from fasttts.models.registry import AutoEngine

    engine = AutoEngine(Settings(model_path=str(write_random_orpheus(tmp_path / "orpheus", size="tiny", seed=1))))
    try:
        async with running(settings, engine) as client:
            speak = {"name": engine.default_voice, "text": "Hi.", "response_format": "wav", "max_tokens": 28, "seed": 1}
            assert (await client.post("/speak", json=speak)).status_code == 200
            r = await client.get("/metrics")
            assert r.status_code == 200, r.text
            assert occupancy(r.text) and max(occupancy(r.text).values()) >= 1.0, r.text
    finally:
        await engine.shutdown()
