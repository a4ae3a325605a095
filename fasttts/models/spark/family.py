"""Spark-TTS in the model registry: the Spark-TTS-0.5B release layout."""

from __future__ import annotations

from pathlib import Path

from fasttts.models.registry import ModelFamily


def detect(root: Path) -> bool:
    return (root / "LLM").is_dir() and (root / "BiCodec").is_dir()


FAMILY = ModelFamily(
    name="spark",
    detect=detect,
    engine="fasttts.models.spark.engine:SparkEngine",
    layout="a Spark-TTS directory (LLM/, BiCodec/, wav2vec2-large-xlsr-53/, config.yaml)",
)
