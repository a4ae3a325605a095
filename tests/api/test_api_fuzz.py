"""Schema-driven fuzzing (schemathesis) of every operation in the OpenAPI document, against a real
server process: the embedded default (Piper) and a tiny random Spark with an API key. Whatever the
generated request, the answer is below 500 and comes within the timeout, and the server keeps
serving. Bounded to a few examples per operation so both servers take a few minutes together.

Failures it found became regression tests in test_api_bad_input.py and test_api_openapi.py.
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from conftest import served
from hypothesis import HealthCheck, settings

pytestmark = pytest.mark.slow

KEY = "fuzz-key"
ANSWER_TIMEOUT_S = 120
"""A request that has not answered by then counts as a hang (generous: on a 2-core machine shared
with other test runs, one tiny-Spark speech request once took over 60 s)."""
SEMANTIC_TOKENS = 8
"""Semantic tokens a fuzzed Spark request may write beyond the grammar's fixed prefix: random
weights never stop on their own, so every generating case gets ``max_tokens`` = the model's minimum
plus these (a fuzzer's 10^6 would be a legitimate but minutes-long request, not the hang this test
looks for; a value under the minimum is a 400 every time, and the case would generate nothing)."""
_NATIVE = ("/speak", "/multi_speak", "/clone_voice")
GENERATING = frozenset({*_NATIVE, *(f"/v1{path}" for path in _NATIVE), "/v1/audio/speech", "/v1/jobs"})
"""The operations that synthesise (and take ``max_tokens``: top-level, or in a job's ``sampling``);
the native routes are served at ``/`` and again under ``/v1``."""
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


@pytest.fixture(scope="module")
def spark_max_tokens(tiny_spark_dir) -> int:
    """``max_tokens`` for every generating tiny-Spark case: the most any voice needs before its first
    semantic token (a created voice's acoustic values and global tokens: the grammar's longest
    prefix, which ``SparkEngine.min_tokens`` reports), plus a few semantic tokens of audio."""
    from tokenizers import Tokenizer

    from fasttts.models.spark.tokens import SparkGrammar, SparkVocab

    vocab = SparkVocab.from_tokenizer(Tokenizer.from_file(str(tiny_spark_dir / "LLM" / "tokenizer.json")))
    return SparkGrammar(vocab, "create").prefix_length + 1 + SEMANTIC_TOKENS


def _bound_generation(case, max_tokens: int) -> None:
    """Give a generating case ``max_tokens`` (JSON body, form field, or a job's ``sampling``, in the
    JSON body or the multipart form's ``request``), whether or not the fuzzer set one."""
    body = case.body
    if case.method.upper() != "POST" or case.path not in GENERATING or not isinstance(body, dict):
        return
    if case.path != "/v1/jobs":
        body["max_tokens"] = str(max_tokens) if "multipart" in (case.media_type or "") else max_tokens
        return
    if isinstance(body.get("request"), str):  # the multipart form: the job is JSON in a field
        try:
            job = json.loads(body["request"])
        except ValueError:
            return  # not JSON: a 422 that generates nothing
        if isinstance(job, dict) and isinstance(job.setdefault("sampling", {}), dict):
            job["sampling"]["max_tokens"] = max_tokens
            body["request"] = json.dumps(job)
    elif isinstance(body.setdefault("sampling", {}), dict):
        body["sampling"]["max_tokens"] = max_tokens


def _check(case, server, headers: dict[str, str] | None = None, max_tokens: int | None = None) -> None:
    if max_tokens is not None:
        _bound_generation(case, max_tokens)
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
def test_fuzz_tiny_spark_with_a_key(case, spark_server, spark_max_tokens):
    _check(case, spark_server, {"Authorization": f"Bearer {KEY}"}, spark_max_tokens)
