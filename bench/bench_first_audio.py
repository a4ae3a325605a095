"""Time to first audio of one streamed Spark request: a stored (frozen) voice against a created one.

    python bench/bench_first_audio.py --model_path /tmp/spark-full --backend torch --torch_dtype auto

A frozen voice's prompt already holds its speaker tokens, so its first chunk waits only for the
streaming schedule's semantic tokens (first chunk + lookahead); a created voice first writes its
39-token voice prefix (acoustic and global tokens), so it waits those too. The script prints both
counts (from the engine's settings), the measured median time to first audio over ``--repeats``
requests, and the decode rate, one request at a time. Rows go to bench/results/first_audio.jsonl.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path

from stamp import commit, machine, tokenizer

from fasttts import AutoEngine, SamplingParams
from fasttts.models.spark.engine import STREAM_FIRST_CHUNK, STREAM_LOOKAHEAD
from fasttts.models.spark.tokens import SparkGrammar
from fasttts.params import VoiceParams

TEXT = "The quick brown fox jumps over the lazy dog."


async def first_audio(engine, name: str, sampling: SamplingParams) -> float:
    t0 = time.perf_counter()
    stream = engine.speak_stream(TEXT, name, sampling=sampling)
    async for _ in stream:
        first = time.perf_counter() - t0
        break
    await stream.aclose()
    return first


async def run(args: argparse.Namespace) -> None:
    engine = AutoEngine(args.model_path, args.backend, torch_dtype=args.torch_dtype)
    await engine.start()
    await engine.freeze_voice("bench-frozen", VoiceParams(gender="female"), seed=1)
    sampling = SamplingParams(max_tokens=args.max_tokens, seed=1)
    await first_audio(engine, "female", sampling)  # warm-up
    semantic = STREAM_FIRST_CHUNK + STREAM_LOOKAHEAD
    prefix = SparkGrammar(engine.vocab, "create").prefix_length  # the created voice's tokens
    weights = getattr(engine.backend, "weight_format", None)
    carries = tokenizer(args.model_path)
    print(f"{machine()}; backend {args.backend}, LLM weights {weights}, tokenizer {carries}; load avg {os.getloadavg()[0]:.1f}")
    out = Path(__file__).parent / "results" / "first_audio.jsonl"
    out.parent.mkdir(exist_ok=True)
    for kind, name, tokens in (("frozen", "bench-frozen", semantic), ("created", "female", prefix + semantic)):
        times = [await first_audio(engine, name, sampling.with_seed(i)) for i in range(args.repeats)]
        p50 = statistics.median(times)
        print(f"{kind:8s} voice: first audio after {tokens:3d} LLM tokens, {p50:6.2f} s (median of {len(times)})", flush=True)
        row = dict(
            kind=kind,
            tokens_before_audio=tokens,
            ttfa_p50_s=p50,
            ttfa_s=times,
            backend=args.backend,
            weights=weights,
            tokenizer=carries,
            loadavg_1m=os.getloadavg()[0],
            machine=machine(),
            commit=commit(),
            time=time.strftime("%Y-%m-%dT%H:%M:%S"),
        )
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")
    await engine.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_path", required=True, help="a Spark-TTS-0.5B directory")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--torch_dtype", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max_tokens", type=int, default=300)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
