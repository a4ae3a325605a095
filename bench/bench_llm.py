"""LLM backend benchmark: decode throughput (tokens/s) at several batch sizes, in process.

    python bench/bench_llm.py --model_dir /path/to/LLM --batch 1 8
    python bench/bench_llm.py --preset spark-tiny --batch 1 8      # writes a random model first
    python bench/bench_llm.py --model_dir /path/to/LLM --grammar spark   # as in synthesis

For each batch size N it runs N identical-length requests at once through the public backend API
(``create_backend(...).generate``) and prints aggregate tokens/s, per-request tokens/s, time to
first token and the scheduler's mean decode batch. ``--grammar spark`` (or ``orpheus``) decodes the
way synthesis does: the model's prompt layout and output grammar, and its output vocabulary given
to the backend (``BackendConfig.output_ids``; ``--full_head`` withholds it). Results are appended as
JSON lines to bench/results/llm.jsonl, stamped with machine and commit.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from stamp import append_rows, commit, machine, tokenizer

from fasttts.backends.base import GenerationRequest, TokenConstraint
from fasttts.backends.registry import BackendConfig, create_backend

PRESETS = {
    "spark-tiny": ("qwen2", "SPARK_QWEN2_TINY"),
    "spark-full": ("qwen2", "SPARK_QWEN2_FULL"),
    "orpheus-tiny": ("llama", "ORPHEUS_LLAMA_TINY"),
    "orpheus-full": ("llama", "ORPHEUS_LLAMA_FULL"),
}


def grammar(name: str, model_dir: Path, prompt_len: int) -> tuple[list[int], TokenConstraint | None]:
    """The prompt (``prompt_len`` text ids in the model's layout) and output grammar of ``name``."""
    text = list(range(10, 10 + prompt_len))
    if name == "none":
        return text, None
    from fasttts.models.random_llm import load_tokenizer

    tokenizer = load_tokenizer(model_dir)
    if name == "spark":
        from fasttts.models.spark.tokens import SparkGrammar, SparkVocab

        vocab = SparkVocab.from_tokenizer(tokenizer)
        return vocab.create_prompt(text, gender=0, pitch=2, speed=2), SparkGrammar(vocab, "create")
    from fasttts.models.orpheus.constraint import OrpheusConstraint
    from fasttts.models.orpheus.prompt import OrpheusVocab

    vocab = OrpheusVocab.from_tokenizer(tokenizer)
    return [vocab.start_of_human, *text, vocab.end_of_turn, vocab.end_of_human, vocab.start_of_ai, vocab.start_of_speech], OrpheusConstraint(vocab)


async def one(backend, prompt: list[int], constraint: TokenConstraint | None, max_tokens: int, seed: int) -> tuple[int, float, float]:
    """Returns (tokens, time to first token, total time)."""
    t0 = time.perf_counter()
    first, n = 0.0, 0
    request = GenerationRequest(prompt_ids=prompt, max_tokens=max_tokens, temperature=0.8, top_k=50, top_p=0.95, seed=seed, constraint=constraint)
    async for _ in backend.generate(request):
        n += 1
        first = first or time.perf_counter() - t0
    return n, first, time.perf_counter() - t0


def _steps(backend: object) -> tuple[int, int] | None:
    """(decode steps, tokens decoded) from a backend's counters: torch and llama-cpp keep them."""
    stats = getattr(backend, "stats", None)
    for steps, tokens in (("decode_steps", "decode_tokens"), ("decode_calls", "sampled_tokens")):
        if hasattr(stats, steps):
            return getattr(stats, steps), getattr(stats, tokens)
    return None


async def run(args: argparse.Namespace, model_dir: Path) -> list[dict]:
    prompt, constraint = grammar(args.grammar, model_dir, args.prompt_len)
    output_ids = constraint.vocabulary() if constraint is not None and not args.full_head else None
    backend = create_backend(
        args.backend,
        BackendConfig(
            model_dir=str(model_dir), device=args.device, dtype=args.dtype, attn_implementation=args.attn, batch_size=max(args.batch), output_ids=output_ids
        ),
    )
    await backend.start()
    await one(backend, prompt, constraint, 8, 0)  # warm-up
    carries = tokenizer(model_dir)
    print(f"machine: {machine()}  commit: {commit()}  model: {model_dir}  tokenizer: {carries}")
    results = []
    for n in args.batch:
        steps0 = _steps(backend)
        t0 = time.perf_counter()
        outs = await asyncio.gather(*(one(backend, prompt, constraint, args.max_tokens, seed=i) for i in range(n)))
        wall = time.perf_counter() - t0
        tokens = sum(o[0] for o in outs)
        row = {
            "backend": args.backend,
            "model_dir": str(model_dir),
            "tokenizer": carries,
            "grammar": args.grammar,
            "cut_head": output_ids is not None,
            "batch": n,
            "tokens": tokens,
            "tokens_per_s": tokens / wall,
            "per_request_tokens_per_s": statistics.mean(o[0] / o[2] for o in outs),
            "ttft_p50_s": statistics.median(o[1] for o in outs),
            "device": args.device,
            "dtype": args.dtype,
            "machine": machine(),
            "commit": commit(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        if steps0:
            steps1 = _steps(backend)
            steps, toks = steps1[0] - steps0[0], steps1[1] - steps0[1]
            row["mean_decode_batch"] = toks / steps if steps else 0.0
        print(
            f"batch {n:4d}: {row['tokens_per_s']:9.1f} tok/s total, {row['per_request_tokens_per_s']:8.1f} tok/s per request, "
            f"TTFT p50 {row['ttft_p50_s'] * 1000:7.1f} ms, mean decode batch {row.get('mean_decode_batch', float('nan')):.2f}"
        )
        results.append(row)
    await backend.shutdown()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", type=Path, help="HF LLM directory (e.g. Spark-TTS-0.5B/LLM)")
    parser.add_argument("--preset", choices=PRESETS, help="write a random model of this shape instead")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--max_tokens", type=int, default=256)
    parser.add_argument("--prompt_len", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--attn", default="eager", help="attention implementation (the server default: eager)")
    parser.add_argument(
        "--grammar",
        choices=("none", "spark", "orpheus"),
        default="none",
        help="decode as synthesis does: this model's prompt layout, output grammar and output vocabulary",
    )
    parser.add_argument("--full_head", action="store_true", help="with --grammar: keep the whole LM head (no output_ids)")
    args = parser.parse_args()
    if (args.model_dir is None) == (args.preset is None):
        parser.error("give exactly one of --model_dir and --preset")
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model_dir
        if model_dir is None:
            from fasttts.models import random_llm

            arch, size = PRESETS[args.preset]
            model_dir = random_llm.write_random_llm(Path(tmp), arch=arch, size=getattr(random_llm, size), seed=0)
        results = asyncio.run(run(args, model_dir))
    append_rows("llm", results)


if __name__ == "__main__":
    main()
