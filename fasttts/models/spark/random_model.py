"""``fasttts random-model spark``: a complete Spark-TTS-0.5B directory with random weights.

Exactly the release's layout (``LLM/``, ``BiCodec/``, ``wav2vec2-large-xlsr-53/``,
``config.yaml``), names, config keys and — for ``full`` — shapes, so the one loader reads it and
the real model alike. ``tiny`` keeps every structural constant (32 globals, 8192 semantic codes,
320-sample hop, the tokenizer's added tokens) and shrinks only widths and depths.
"""

from __future__ import annotations

from pathlib import Path

from fasttts.models.random_llm import SPARK_QWEN2_FULL, SPARK_QWEN2_TINY, default_special_tokens, write_random_llm
from fasttts.models.spark.random_codec import write_random_codec
from fasttts.models.spark.tokens import SPARK_ADDED_TOKENS


def write_random_spark(model_dir: str | Path, *, size: str = "tiny", seed: int = 0, wav2vec_weights: str = "bin") -> Path:
    """Write a random ``tiny`` (about 35 MB, synthesises in seconds) or ``full`` (release shapes,
    about 4 GB) Spark directory and return its path. ``wav2vec_weights``: ``bin`` (the release's
    ``pytorch_model.bin``) or ``safetensors`` (``model.safetensors``)."""
    if size not in ("tiny", "full"):
        raise ValueError(f"size must be 'tiny' or 'full', not {size!r}")
    root = Path(model_dir)
    root.mkdir(parents=True, exist_ok=True)
    write_random_llm(
        root / "LLM",
        arch="qwen2",
        size=SPARK_QWEN2_FULL if size == "full" else SPARK_QWEN2_TINY,
        added_tokens=SPARK_ADDED_TOKENS,
        special_tokens=default_special_tokens("qwen2"),
        seed=seed,
    )
    write_random_codec(root, size, seed, wav2vec_weights)  # type: ignore[arg-type]
    return root
