"""Orpheus benchmark: SNAC decoding batched vs one call per stream, and streaming engine figures.

    python bench/bench_orpheus.py --size tiny --concurrency 1 8          # writes a random model first
    python bench/bench_orpheus.py --model_path /models/orpheus-3b-0.1-ft --snac full --concurrency 1 8

Part 1 (codec): N streaming-sized windows (3 + 8 + 3 frames) decoded by N separate SNAC calls
versus one padded batched call, at the SNAC shape of ``--snac`` (``full`` = snac_24khz's
19.8M-parameter decoder): the cost the micro-batcher saves when many streams are live.
Part 2 (engine): N concurrent streaming requests on ``--backend``: aggregate real-time factor
(wall ÷ audio seconds), time to first audio (p50/p95) and the SNAC batcher's mean occupancy.
Results are appended as JSON lines to bench/results/orpheus.jsonl, stamped with machine and commit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from stamp import commit, machine, tokenizer

from fasttts.models.orpheus.engine import OrpheusEngine
from fasttts.models.orpheus.random_model import SNAC_24KHZ, SNAC_TINY, write_random_orpheus, write_random_snac
from fasttts.models.orpheus.snac_codec import DecodeItem, SnacCodec
from fasttts.params import SamplingParams

TEXT = "Hey there <laugh> I finally finished the book you lent me, and honestly, the ending surprised me."


def bench_codec(snac_dir: Path, n: int, device: str, repeats: int = 3) -> dict:
    codec = SnacCodec.load(snac_dir, device=device)
    rng = np.random.default_rng(0)
    items = [DecodeItem(rng.integers(0, 4096, (14, 7)), start=10 * i + 5, at_end=False) for i in range(n)]
    codec.decode_batch(items[:1])  # warm-up

    def timed(fn) -> float:
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
        return best

    serial = timed(lambda: [codec.decode_batch([item]) for item in items])
    batched = timed(lambda: codec.decode_batch(items))
    return {"windows": n, "serial_s": round(serial, 4), "batched_s": round(batched, 4), "speedup": round(serial / batched, 2)}


async def bench_engine(engine: OrpheusEngine, n: int, max_tokens: int) -> dict:
    async def one(seed: int) -> tuple[float, float]:
        t0 = time.perf_counter()
        first, samples = None, 0
        async for chunk in engine.speak_stream(TEXT, sampling=SamplingParams(seed=seed, max_tokens=max_tokens)):
            first = first or time.perf_counter() - t0
            samples += len(chunk)
        return samples / engine.sample_rate, first or 0.0

    batcher = engine.decoder_batcher
    b0, i0 = batcher.batches_run, batcher.items_run
    t0 = time.perf_counter()
    results = await asyncio.gather(*(one(s) for s in range(n)))
    wall = time.perf_counter() - t0
    audio = sum(r[0] for r in results)
    ttfa = sorted(r[1] for r in results)
    return {
        "concurrency": n,
        "audio_s": round(audio, 2),
        "wall_s": round(wall, 2),
        "rtf": round(wall / audio, 3),
        "ttfa_p50_s": round(statistics.median(ttfa), 3),
        "ttfa_p95_s": round(ttfa[min(len(ttfa) - 1, int(0.95 * len(ttfa)))], 3),
        "snac_batch_occupancy": round((batcher.items_run - i0) / max(1, batcher.batches_run - b0), 2),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_path", help="Orpheus LLM directory (default: write a random one of --size)")
    parser.add_argument("--size", choices=["tiny", "full"], default="tiny")
    parser.add_argument("--snac", choices=["tiny", "full"], default="full", help="SNAC shape for the codec benchmark")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--max_tokens", type=int, default=7 * 48)
    args = parser.parse_args()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device

    with tempfile.TemporaryDirectory() as tmp:
        snac_dir = write_random_snac(Path(tmp) / "snac", SNAC_24KHZ if args.snac == "full" else SNAC_TINY)
        codec_rows = [bench_codec(snac_dir, n, device) for n in args.concurrency]
        model_path = Path(args.model_path) if args.model_path else write_random_orpheus(Path(tmp) / "orpheus", size=args.size)
        engine = OrpheusEngine.load(model_path, backend=args.backend, batch_size=max(args.concurrency), llm_device=device, detokenizer_device=device)
        carries = tokenizer(model_path)
        print(f"model {model_path}: tokenizer {carries}")
        await engine.start()
        try:
            await bench_engine(engine, 1, 7 * 4)  # warm-up
            engine_rows = [await bench_engine(engine, n, args.max_tokens) for n in args.concurrency]
        finally:
            await engine.shutdown()

    stamp = {
        "machine": machine(),
        "commit": commit(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "backend": args.backend,
        "model": str(args.model_path or f"random-{args.size}"),
        "tokenizer": carries,
        "snac": args.snac,
        "device": device,
    }
    out = Path(__file__).parent / "results" / "orpheus.jsonl"
    out.parent.mkdir(exist_ok=True)
    with out.open("a") as f:
        for row in codec_rows:
            print(f"SNAC ({args.snac}) {row['windows']} windows: serial {row['serial_s']} s, batched {row['batched_s']} s, x{row['speedup']}")
            f.write(json.dumps({**stamp, "part": "codec", **row}) + "\n")
        for row in engine_rows:
            print(
                f"engine N={row['concurrency']}: RTF {row['rtf']}, TTFA p50 {row['ttfa_p50_s']} s / p95 {row['ttfa_p95_s']} s, "
                f"SNAC batch occupancy {row['snac_batch_occupancy']}"
            )
            f.write(json.dumps({**stamp, "part": "engine", **row}) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
