"""Peak resident memory of a full-size model at load and while decoding, against what it must hold.

    python bench/bench_memory.py --family spark --model_dir /tmp/spark-full --dtype float32
    python bench/bench_memory.py --family orpheus --model_dir /tmp/orpheus-full --all   # each torch dtype, one process each

One process per (model, dtype), so peaks do not mix. It prints, in MB:

* ``baseline``: resident memory after importing torch and FastTTS, before the model;
* ``weights``: bytes of every tensor the loaded engine's modules hold (LLM, codec, encoders);
* ``load_peak``: the process's peak resident memory (``VmHWM``) once loading is done;
* ``kv``: the KV cache at its largest while decoding (the activations that persist);
* ``decode_peak``: peak resident memory during the decode (``VmHWM`` reset before it);
* ``decode_weights``: the same after decoding: a bfloat16 LM head adds the rows it packed for its
  float32 logits (Spark: ~22 MB);
* the ratios ``(load_peak - baseline) / weights`` and ``(decode_peak - baseline) / (decode_weights + kv)``
  (the target is at most 1.2: the weights are never held twice). The baseline is measured and
  subtracted, not folded into the factor, where it would hide ~0.3 GB of transients.

Rows are appended to bench/results/memory.jsonl with machine and commit. Memory is the
process's own; other processes on a shared machine do not change it, but a machine short of
memory can swap or kill a run, so run one model at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

from stamp import commit, machine, tokenizer

MB = 1 << 20
DTYPES = {"spark": ("float32", "bfloat16", "float16", "int8"), "orpheus": ("float32", "bfloat16", "float16", "int8")}


def _status(field: str) -> int:
    """A ``/proc/self/status`` memory field, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)


def tensor_bytes() -> int:
    """Bytes of every distinct CPU tensor held by a live ``nn.Module`` (:func:`fasttts.checkpoint.held_bytes`)."""
    from torch import nn

    from fasttts.checkpoint import held_bytes

    with warnings.catch_warnings():  # isinstance() touches deprecated torch.distributed aliases
        warnings.simplefilter("ignore")
        modules = [obj for obj in gc.get_objects() if isinstance(obj, nn.Module)]
    return held_bytes(modules)


async def measure(family: str, model_dir: str, dtype: str, tokens: int, text: str) -> dict:
    import torch
    import transformers  # noqa: F401 - Spark's wav2vec2 encoder

    import fasttts.backends.torch_backend  # noqa: F401
    from fasttts.models.registry import AutoEngine
    from fasttts.params import SamplingParams

    __import__(f"fasttts.models.{family}.engine")
    torch.ones(64, 64) @ torch.ones(64, 64)  # thread pools and kernels initialised: part of the baseline
    gc.collect()
    baseline = _status("VmRSS")
    engine = AutoEngine(model_dir, backend="torch", torch_dtype=dtype, llm_device="cpu", tokenizer_device="cpu", detokenizer_device="cpu")
    await engine.start()
    await engine.backend.start()  # the LLM is built on first use: build it now
    gc.collect()
    weights, load_peak = tensor_bytes(), _status("VmHWM")

    _reset_peak()
    kv = 0
    cache = engine.backend.scheduler.cache
    sampling = SamplingParams(max_tokens=tokens, seed=1)
    samples = 0
    async for chunk in engine.speak_stream(text, sampling=sampling):
        kv = max(kv, cache.nbytes())
        samples += len(chunk)
    decode_peak, decode_weights = _status("VmHWM"), tensor_bytes()  # + head rows packed while decoding
    await engine.shutdown()
    row = {
        "family": family,
        "dtype": dtype,
        "tokens": tokens,
        "audio_s": round(samples / engine.sample_rate, 2),
        "baseline_mb": round(baseline / MB),
        "weights_mb": round(weights / MB),
        "load_peak_mb": round(load_peak / MB),
        "kv_mb": round(kv / MB),
        "decode_peak_mb": round(decode_peak / MB),
        "decode_weights_mb": round(decode_weights / MB),
        "load_ratio": round((load_peak - baseline) / weights, 3),
        "decode_ratio": round((decode_peak - baseline) / (decode_weights + kv), 3),
        "loadavg_1m": os.getloadavg()[0],
        "tokenizer": tokenizer(model_dir),
        "machine": machine(),
        "commit": commit(),
    }
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", choices=sorted(DTYPES), required=True)
    parser.add_argument("--model_dir", required=True, help="a full-size model (fasttts random-model FAMILY DIR --size full)")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--all", action="store_true", help="every torch dtype, each in its own process")
    parser.add_argument("--tokens", type=int, default=None, help="max_tokens of the decode (default: Spark 240, Orpheus 140)")
    parser.add_argument("--text", default="Memory is measured while this sentence is being spoken.")
    args = parser.parse_args()
    tokens = args.tokens or (240 if args.family == "spark" else 140)
    if args.all:
        for dtype in DTYPES[args.family]:
            subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--family",
                    args.family,
                    "--model_dir",
                    args.model_dir,
                    "--dtype",
                    dtype,
                    "--tokens",
                    str(tokens),
                    "--text",
                    args.text,
                ],
                check=True,
            )
        return
    row = asyncio.run(measure(args.family, args.model_dir, args.dtype, tokens, args.text))
    print(json.dumps(row))
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    with (results / "memory.jsonl").open("a") as f:
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
