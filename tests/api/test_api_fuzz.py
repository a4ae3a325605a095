"""Schema-driven fuzzing (schemathesis) of every operation in the OpenAPI document, against a real
server process: the embedded default (Piper) and a tiny random Spark with an API key. Whatever the
generated request, the answer is below 500 and comes within the timeout, and the server keeps
serving. Bounded to a few examples per operation so both servers take a few minutes together.

Failures it found became regression tests in test_api_bad_input.py and test_api_openapi.py.
"""

from __future__ import annotations

import pytest
import schemathesis
from conftest import served
from hypothesis import HealthCheck, settings

pytestmark = pytest.mark.slow

KEY = "fuzz-key"
ANSWER_TIMEOUT_S = 120
"""A request that has not answered by then counts as a hang (generous: on a 2-core machine shared
with other test runs, one tiny-Spark speech request once took over 60 s)."""
GENERATION_CAP = {"max_tokens": 24}
"""Random Spark weights never stop on their own: cap generated tokens (a fuzzer's 10^6 would be a
legitimate but minutes-long request, not the hang this test looks for)."""
FUZZ = settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def piper_server(tmp_path_factory):
    with served(tmp_path_factory.mktemp("fuzz-piper"), "--max_input_chars", "400") as server:
        yield server


@pytest.fixture(scope="module")
def spark_server(tmp_path_factory, tiny_spark_dir):
    with served(tmp_path_factory.mktemp("fuzz-spark"), "--model_path", str(tiny_spark_dir), "--api_key", KEY, "--max_input_chars", "100") as server:
        yield server


def _schema(url: str, **kwargs):
    """The server's own OpenAPI document, fuzzed with its examples and random cases (schemathesis's
    coverage phase, which enumerates hundreds of boundary cases per operation, is left out to keep
    the run to minutes)."""
    schema = schemathesis.openapi.from_url(url, **kwargs)
    schema.config.phases.coverage.enabled = False
    return schema


@pytest.fixture(scope="module")
def piper_schema(piper_server):
    return _schema(f"{piper_server.url}/openapi.json")


@pytest.fixture(scope="module")
def spark_schema(spark_server):
    return _schema(f"{spark_server.url}/openapi.json", headers={"Authorization": f"Bearer {KEY}"})


def _capped(case) -> None:
    """Keep generation short: cap max_tokens wherever the body carries it (JSON, form or a job's sampling)."""
    body = case.body if isinstance(case.body, dict) else None
    if body is None:
        return
    for holder in (body, body.get("sampling") if isinstance(body.get("sampling"), dict) else None):
        if holder is not None and "max_tokens" in holder:
            holder["max_tokens"] = str(GENERATION_CAP["max_tokens"]) if isinstance(holder["max_tokens"], str) else GENERATION_CAP["max_tokens"]


def _check(case, server, headers: dict[str, str] | None = None) -> None:
    _capped(case)
    response = case.call(base_url=server.url, headers=headers, timeout=ANSWER_TIMEOUT_S)
    assert response.status_code < 500, f"{case.method} {case.path}: {response.status_code} {response.text[:500]}"
    assert server.alive(), f"the server died on {case.method} {case.path}"


piper = schemathesis.pytest.from_fixture("piper_schema")
spark = schemathesis.pytest.from_fixture("spark_schema")


@piper.parametrize()
@FUZZ
def test_fuzz_embedded_piper(case, piper_server):
    _check(case, piper_server)


@spark.parametrize()
@FUZZ
def test_fuzz_tiny_spark_with_a_key(case, spark_server):
    _check(case, spark_server, {"Authorization": f"Bearer {KEY}"})
