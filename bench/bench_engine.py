"""Engine-level benchmark: real-time factor and time to first audio, in process.

    python bench/bench_engine.py --model_path /tmp/spark-full --backend torch --concurrency 1 8

For each concurrency N it runs N requests at once (non-streaming, then streaming) and prints:
aggregate RTF (wall time ÷ total audio seconds; < 1 is faster than real time), throughput
relative to N=1, and time to first audio chunk (p50/p95) for the streaming run. Results are
also appended as JSON lines to bench/results/engine.jsonl, stamped with machine and commit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

from stamp import commit, machine, tokenizer

from fasttts import AutoEngine, SamplingParams

TEXTS = {
    "short": "The quick brown fox jumps over the lazy dog.",
    "long": (
        "It was a bright cold day in April, and the clocks were striking thirteen. Winston Smith, his chin "
        "nuzzled into his breast in an effort to escape the vile wind, slipped quickly through the glass doors "
        "of Victory Mansions, though not quickly enough to prevent a swirl of gritty dust from entering along with him."
    ),
}


async def one(engine, text: str, sampling: SamplingParams, stream: bool) -> tuple[float, float]:
    """Returns (audio seconds, time to first chunk)."""
    t0 = time.perf_counter()
    first = None
    samples = 0
    if stream:
        async for chunk in engine.speak_stream(text, sampling=sampling):
            first = first or time.perf_counter() - t0
            samples += len(chunk)
    else:
        audio = await engine.speak(text, sampling=sampling)
        first = time.perf_counter() - t0
        samples = len(audio)
    return samples / engine.sample_rate, first or 0.0


async def run(args: argparse.Namespace) -> None:
    options = {"batch_size": args.codec_batch_size} if args.codec_batch_size else {}  # else the engine's defaults
    options["torch_dtype"] = args.torch_dtype
    engine = AutoEngine(args.model_path, args.backend, **options)
    await engine.start()
    sampling = SamplingParams(max_tokens=args.max_tokens, seed=1)
    await one(engine, TEXTS["short"], sampling, False)  # warm-up
    base_throughput = None
    out_file = Path(__file__).parent / "results" / "engine.jsonl"
    out_file.parent.mkdir(exist_ok=True)
    carries = tokenizer(args.model_path)
    print(f"machine: {machine()}  commit: {commit()}  model: {args.model_path}  tokenizer: {carries}  backend: {args.backend}  torch_dtype: {args.torch_dtype}")
    print(f"{'text':6} {'N':>3} {'mode':9} {'wall s':>7} {'audio s':>8} {'RTF':>6} {'x vs N=1':>8} {'TTFA p50':>9} {'p95':>7}")
    for text_name in args.texts:
        for n in args.concurrency:
            for stream in (False, True):
                t0 = time.perf_counter()
                results = await asyncio.gather(*(one(engine, TEXTS[text_name], sampling.with_seed(i), stream) for i in range(n)))
                wall = time.perf_counter() - t0
                audio = sum(r[0] for r in results)
                firsts = sorted(r[1] for r in results)
                rtf = wall / audio if audio else float("inf")
                throughput = audio / wall
                if not stream and n == args.concurrency[0]:
                    base_throughput = throughput
                speedup = throughput / base_throughput if base_throughput else 1.0
                p50 = statistics.median(firsts)
                p95 = firsts[min(len(firsts) - 1, int(0.95 * len(firsts)))]
                mode = "stream" if stream else "full"
                print(f"{text_name:6} {n:>3} {mode:9} {wall:7.2f} {audio:8.2f} {rtf:6.3f} {speedup:8.2f} {p50:9.3f} {p95:7.3f}")
                row = dict(machine=machine(), commit=commit(), model=args.model_path, tokenizer=carries, backend=args.backend, torch_dtype=args.torch_dtype, text=text_name,
                           concurrency=n, stream=stream, wall_s=wall, audio_s=audio, rtf=rtf, ttfa_p50=p50, ttfa_p95=p95)  # fmt: skip
                with out_file.open("a") as f:
                    f.write(json.dumps(row) + "\n")
    await engine.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_path", default=None)
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--texts", nargs="+", default=["short"], choices=list(TEXTS))
    parser.add_argument("--max_tokens", type=int, default=500, help="bounds random-weight models, which rarely stop by themselves")
    parser.add_argument("--torch_dtype", default="auto", help="LLM weights: auto, float32, bfloat16, int8 (torch backend)")
    parser.add_argument("--codec_batch_size", type=int, help="the codec micro-batchers' batch size (default: the engine's, 1)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
