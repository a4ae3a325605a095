"""Session-wide fixtures shared by every test package: random-weight models written once per run,
and a real speech clip from the bundled Piper voice (the suite's source of real audio)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

SERVICE_FIXTURES = frozenset({"pg_url", "seaweed"})
"""Fixtures that talk to a real service: a test using one (directly or through other fixtures) is
marked ``services``, so ``-m "not services"`` runs without Redis, PostgreSQL or S3."""

SKIPS_ALLOWED_ON_CI = (
    "sglang is installed",  # the missing-extra test only means something without SGLang
    "kernel not in this build",  # a build capability, not a missing part (tests/backends/test_cpu_linear.py)
    "real SGLang runs on CUDA only",  # a hardware capability: CI has no GPU
    "this backend cannot fix a request's random stream",  # a backend capability (conformance)
)
"""Reasons a test may skip on CI. Any other skip there (a missing browser, binary, extra or
converter) is a part CI must have, so with ``CI=true`` it fails instead of hiding the gap."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)


def _fail_hidden_skip(report: pytest.CollectReport | pytest.TestReport) -> None:
    """Two rules turn a skip into a failure: on CI (``CI=true``) every skip but
    :data:`SKIPS_ALLOWED_ON_CI`; under ``scripts/test.sh`` (``FASTTTS_REQUIRE_EXTRAS=1``, after setup
    installed every extra the suite tests) a skip for an import that fails, a broken install."""
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    longrepr = report.longrepr
    reason = str(longrepr[2] if isinstance(longrepr, tuple) else longrepr)
    if os.environ.get("CI") == "true" and not any(allowed in reason for allowed in SKIPS_ALLOWED_ON_CI):
        report.outcome = "failed"
        report.longrepr = f"skipped on CI (CI=true), where nothing may be missing: {reason}"
    elif os.environ.get("FASTTTS_REQUIRE_EXTRAS") and "could not import" in reason:
        report.outcome = "failed"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    outcome = yield
    _fail_hidden_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    outcome = yield  # a module-level skip (``pytest.importorskip``) is a collect report
    _fail_hidden_skip(outcome.get_result())


@pytest.fixture(scope="session")
def tiny_spark_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Spark-TTS directory in the official layout (written once per session)."""
    from fasttts.models.spark.random_model import write_random_spark

    return write_random_spark(tmp_path_factory.mktemp("spark-tiny"), size="tiny", seed=0)


@pytest.fixture(scope="session")
def piper_speech() -> tuple[bytes, str]:
    """About three seconds of real speech as WAV bytes, with its transcript."""
    from fasttts.audio.encode import encode_audio
    from fasttts.models.piper.engine import PiperEngine

    text = "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background."

    async def speak() -> bytes:
        engine = PiperEngine.load()
        audio = await engine.speak(text)
        await engine.shutdown()
        return encode_audio(audio, engine.sample_rate, "wav")

    return asyncio.run(speak()), text
