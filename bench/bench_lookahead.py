"""The smallest BiCodec lookahead (and left context) at which a Spark stream equals the whole file.

    python bench/bench_lookahead.py --model_dir /tmp/spark-full      # a Spark-TTS-0.5B directory

Decodes ``--tokens`` random semantic tokens (random speaker globals), then the same with one
token changed, at three positions: the tokens whose audio moves bound how far the decoder reaches
back (the lookahead a chunk needs after its last token) and forward (the left context it needs
before its first). It then streams through :class:`~fasttts.engine.streaming.ChunkedDecoder`
(the engine's chunk schedule) at those values and 2 tokens less, and prints the largest
deviation from the one-shot decode relative to its peak. The criterion is the streaming tests':
at most 1e-3 of the peak. It reads the decoder as released, so on random weights it measures the architecture's
reach, which trained weights share (what a weight is worth changes, not which samples it touches).
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import numpy as np

from fasttts.engine.streaming import ChunkedDecoder
from fasttts.models.spark.codec import SparkCodec
from fasttts.models.spark.engine import STREAM_CROSSFADE, STREAM_FIRST_CHUNK, STREAM_MAX_CHUNK

TOLERANCE = 1e-3  # of the one-shot peak, as tests/models/test_spark_engine.py asserts


async def deviation(codec: SparkCodec, globals_: np.ndarray, tokens: list[int], *, lookahead: int, left_context: int) -> float:
    whole = codec.detokenize(globals_, np.asarray(tokens))

    async def decode(part):
        return codec.detokenize(globals_, np.asarray(part))

    chunker = ChunkedDecoder(
        decode,
        hop=codec.hop,
        first_chunk=STREAM_FIRST_CHUNK,
        max_chunk=STREAM_MAX_CHUNK,
        left_context=left_context,
        lookahead=lookahead,
        crossfade=min(STREAM_CROSSFADE, lookahead * codec.hop),
    )
    pieces = await chunker.push(tokens)
    pieces += await chunker.flush()
    stream = np.concatenate(pieces)
    assert len(stream) == len(whole)
    return float(np.abs(stream - whole).max() / np.abs(whole).max())


def reach(codec: SparkCodec, globals_: np.ndarray, tokens: list[int], at: int) -> tuple[int, int]:
    """How many tokens before and after token ``at`` change their audio by more than the
    tolerance when ``at`` changes: the lookahead and the left context a chunk needs."""
    whole = codec.detokenize(globals_, np.asarray(tokens))
    changed = list(tokens)
    changed[at] = (changed[at] + codec.semantic_codebook_size // 2) % codec.semantic_codebook_size
    diff = np.abs(codec.detokenize(globals_, np.asarray(changed)) - whole).reshape(len(tokens), codec.hop).max(axis=1)
    touched = np.flatnonzero(diff > TOLERANCE * np.abs(whole).max() / 4)  # 4 chunk seams may add up
    return at - int(touched.min()), int(touched.max()) - at


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", type=Path, required=True)
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    codec = SparkCodec.load(args.model_dir)
    rng = np.random.default_rng(args.seed)
    globals_ = rng.integers(0, codec.global_codebook_size, codec.num_global_tokens)
    tokens = rng.integers(0, codec.semantic_codebook_size, args.tokens).tolist()
    reaches = [reach(codec, globals_, tokens, at) for at in (args.tokens // 3, args.tokens // 2, 2 * args.tokens // 3)]
    lookahead, left = max(r[0] for r in reaches), max(r[1] for r in reaches)
    print(f"one token changes the audio of up to {lookahead} tokens before it and {left} after it", flush=True)
    for la, lc in ((lookahead, left), (lookahead - 2, left), (lookahead, left - 2)):
        err = await deviation(codec, globals_, tokens, lookahead=la, left_context=lc)
        verdict = "equal" if err <= TOLERANCE else "DIFFERENT"
        print(f"stream with lookahead {la}, left context {lc}: max deviation {err:.2e} of the peak -> {verdict}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
