"""Decode speed per weight format against the machine's memory-bandwidth limit (torch backend).

    fasttts random-model spark /tmp/spark-full --size full        # once, ~4 GB
    python bench/bench_weights.py --model_dir /tmp/spark-full/LLM  # ~3-5 min on a quiet 2-core box

First a read-bandwidth probe (best of several sums over a buffer far larger than the last-level
cache, with torch's thread count). Then for each format (float32, bfloat16, int8) it loads the
LLM through the public backend API, decodes as Spark synthesis does (Spark's prompt layout and
grammar, the LM head cut to the grammar's rows) at batch 1, 8 and 32, and prints aggregate
decode tokens/s (from each request's first token to its last: the prompt's prefill is not decode)
and tokens/s with the prefill, each the best of ``--repeats`` runs (3: a shared host's neighbours
only ever slow a run down). The bandwidth limit of a format is bandwidth / bytes one batch-1 token
reads (every decoder linear weight once, in that format, plus the sliced LM head); the ratio
printed is the batch-1 decode rate over that limit. The 1-minute load average is printed alongside,
since a busy machine depresses every figure. Rows are appended to bench/results/weights.jsonl.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

import torch
from bench_llm import grammar, one
from stamp import append_rows, commit, machine, tokenizer

from fasttts.backends.registry import BackendConfig, create_backend
from fasttts.backends.torch_backend import TorchBackend
from fasttts.backends.torch_llm.cpu_linear import CpuLinear
from fasttts.threads import run_in_fresh_thread

WEIGHT_BYTES = {"float32": 4, "bfloat16": 2, "int8": 1}


def read_bandwidth(mib: int = 512, reps: int = 7) -> float:
    """Bytes/s reading a ``mib`` MiB float32 buffer (best of ``reps`` sums)."""
    buf = torch.ones(mib << 18)
    buf.sum()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        buf.sum()
        best = min(best, time.perf_counter() - t0)
    return buf.numel() * 4 / best


def bytes_per_token(backend: TorchBackend, head_rows: int) -> int:
    """Weight bytes one batch-1 decode step reads: each decoder linear in its format (int8:
    plus a 2-byte scale per row), and ``head_rows`` rows of the LM head in the activation dtype."""
    model = backend.model
    assert model is not None
    fmt = model.weight_format
    total = 0
    for m in model.model.modules():
        if isinstance(m, CpuLinear):
            total += m.out_features * m.in_features * WEIGHT_BYTES[fmt] + (2 * m.out_features if fmt == "int8" else 0)
    head = model.lm_head_weight
    return total + head_rows * head.shape[1] * head.element_size()


async def bench_format(fmt: str, model_dir: Path, batches: list[int], tokens: int, bandwidth: float, repeats: int) -> list[dict]:
    prompt, constraint = grammar("spark", model_dir, 64)
    output_ids = constraint.vocabulary()
    head_rows = max(hi - lo for lo, hi in output_ids)  # the semantic range: the slice nearly every step reads
    backend = create_backend(
        "torch", BackendConfig(model_dir=str(model_dir), device="cpu", dtype=fmt, attn_implementation="eager", batch_size=max(batches), output_ids=output_ids)
    )
    t0 = time.perf_counter()
    await backend.start()
    load_s = time.perf_counter() - t0
    assert isinstance(backend, TorchBackend) and backend.model is not None
    per_token = bytes_per_token(backend, head_rows)
    plan = next(m.plan for m in backend.model.modules() if isinstance(m, CpuLinear))
    print(f"{fmt:9s} loaded in {load_s:.1f} s: {plan.describe()}", flush=True)
    limit = bandwidth / per_token
    await one(backend, prompt, constraint, 8, 0)  # warm-up
    rows = []
    for n in batches:
        runs = []  # (decode tok/s, tok/s with the prefill, tokens) per repeat
        for _ in range(repeats):
            t0 = time.perf_counter()
            outs = await asyncio.gather(*(one(backend, prompt, constraint, tokens, seed=i) for i in range(n)))
            wall = time.perf_counter() - t0
            made = sum(o[0] for o in outs)
            # decode alone: from each request's first token to its last (the prompt's prefill excluded)
            runs.append((sum(o[0] - 1 for o in outs) / max(o[2] - o[1] for o in outs), made / wall, made))
        decode, with_prefill, made = max(runs)  # the least disturbed repeat, as the probe's best of 7
        row = {
            "format": backend.weight_format,
            "batch": n,
            "tokens": made,
            "tokens_per_s": with_prefill,
            "decode_tokens_per_s": decode,
            "decode_runs_tokens_per_s": sorted(r[0] for r in runs),
            "bytes_per_token": per_token,
            "bandwidth_gb_s": bandwidth / 1e9,
            "limit_tokens_per_s": limit,
            "ratio_to_limit": decode / limit if n == 1 else None,
            "load_s": load_s,
            "loadavg_1m": os.getloadavg()[0],
            "kernel": plan.kernel,
            "threads": torch.get_num_threads(),
            "activations": str(plan.activation).removeprefix("torch."),
            "tokenizer": tokenizer(model_dir),
            "machine": machine(),
            "commit": commit(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        ratio = f", {row['ratio_to_limit']:.0%} of the {limit:.1f} tok/s limit" if n == 1 else ""
        spread = f" (best of {repeats}: {min(runs)[0]:.1f}-{decode:.1f})" if repeats > 1 else ""
        print(
            f"{fmt:9s} batch {n:3d}: {decode:7.1f} tok/s decoding{spread}{ratio}; {with_prefill:.1f} with the prefill  (load avg {row['loadavg_1m']:.1f})",
            flush=True,
        )
        rows.append(row)
    await backend.shutdown()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", type=Path, required=True, help="a Spark LLM directory (e.g. /tmp/spark-full/LLM)")
    parser.add_argument("--formats", nargs="+", default=["float32", "bfloat16", "int8"])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--max_tokens", type=int, default=48, help="new tokens per request")
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs per batch size; the best decode rate is kept (a shared host's neighbours only slow runs down)"
    )
    args = parser.parse_args()
    # on a thread that ends: a main thread holding an OpenMP team would slow every decode step (fasttts/threads.py)
    bandwidth = run_in_fresh_thread(read_bandwidth)
    print(
        f"{machine()}; {torch.get_num_threads()} threads read {bandwidth / 1e9:.1f} GB/s; tokenizer {tokenizer(args.model_dir)}; load avg {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    rows = []
    for fmt in args.formats:
        rows += asyncio.run(bench_format(fmt, args.model_dir, args.batch, args.max_tokens, bandwidth, args.repeats))
    append_rows("weights", rows)


if __name__ == "__main__":
    main()
