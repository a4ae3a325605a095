"""Session-wide fixtures shared by every test package: random-weight models written once per run,
and a real speech clip from the bundled Piper voice (the suite's source of real audio)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest


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
