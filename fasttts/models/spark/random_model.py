"""``fasttts random-model spark``: a complete Spark-TTS-0.5B directory with random weights.

Exactly the release's layout (``LLM/``, ``BiCodec/``, ``wav2vec2-large-xlsr-53/``,
``config.yaml``), names, config keys and — for ``full`` — shapes, so the one loader reads it and
the real model alike. ``full`` also carries the release's tokenizer (Qwen2.5's BPE and its 22
tokens, then Spark's 13,493 added tokens from 151665: ``<|bicodec_global_0|>`` 151665,
``<|bicodec_semantic_0|>`` 155761) when ``dashscope`` is installed. ``tiny`` keeps every
structural constant (32 globals, 8192 semantic codes, 320-sample hop, the tokenizer's added
tokens) and shrinks only widths, depths and the BPE.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from fasttts.models.random_llm import SPARK_QWEN2_FULL, SPARK_QWEN2_TINY, write_random_llm, write_tokenizer
from fasttts.models.spark.random_codec import Size, Wav2VecWeights, write_random_codec
from fasttts.models.spark.tokens import SPARK_ADDED_TOKENS


def _llm_args(size: str) -> dict[str, Any]:
    if size not in ("tiny", "full"):
        raise ValueError(f"size must be 'tiny' or 'full', not {size!r}")
    return dict(arch="qwen2", added_tokens=SPARK_ADDED_TOKENS)


def write_spark_tokenizer(llm_dir: str | Path, *, size: str = "full") -> Tokenizer:
    """Only the ``LLM/`` tokenizer files of a ``size`` Spark (for tests of the tokenizer)."""
    preset = SPARK_QWEN2_FULL if size == "full" else SPARK_QWEN2_TINY
    return write_tokenizer(llm_dir, release=size == "full", max_position=preset["max_position"], **_llm_args(size))


def write_random_spark(model_dir: str | Path, *, size: Size = "tiny", seed: int = 0, wav2vec_weights: Wav2VecWeights = "bin") -> Path:
    """Write a random ``tiny`` (about 35 MB, synthesises in seconds) or ``full`` (release shapes,
    about 4 GB) Spark directory and return its path. ``wav2vec_weights``: ``bin`` (the release's
    ``pytorch_model.bin``) or ``safetensors`` (``model.safetensors``)."""
    args = _llm_args(size)
    root = Path(model_dir)
    root.mkdir(parents=True, exist_ok=True)
    write_random_llm(root / "LLM", size=SPARK_QWEN2_FULL if size == "full" else SPARK_QWEN2_TINY, seed=seed, release_tokenizer=size == "full", **args)
    write_random_codec(root, size, seed, wav2vec_weights)
    return root
