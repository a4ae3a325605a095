"""MegaTTS3 per-stage benchmark on one ~10 s segment: g2p (LLM backend), duration LM, DiT flow
matching (per step, and 1 vs N concurrent requests sharing forwards), WaveVAE decode; plus the
once-per-voice reference alignment.

    python bench/bench_mega.py --size full --steps 2 --concurrency 1 4     # writes a random release first
    python bench/bench_mega.py --model_path /models/MegaTTS3 --steps 32

Stages 2-4 run on a synthetic segment of ``--phones`` phones lasting ``--seconds`` (random weights
would speak for any length), so every stage sees the shapes of a real 10 s segment. The DiT runs
``--steps`` steps; its 32-step figure is per-step time × 32. Results are appended as JSON lines to
bench/results/mega.jsonl, stamped with machine and commit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import torch
from stamp import commit, machine, tokenizer

from fasttts.models.megatts3.engine import MegaEngine
from fasttts.models.megatts3.pipeline import DiTItem, decode_audio, dit_inputs, sample_batch
from fasttts.models.megatts3.random_model import write_random_mega, write_random_voice
from fasttts.params import VoiceParams


class _Rows(dict):
    """Prints each figure as it is measured (a slow, shared machine may stop a run early)."""

    def __setitem__(self, key: str, value: float) -> None:
        super().__setitem__(key, value)
        print(f"{key:55s} {value:9.3f}", flush=True)


def _timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model_path")
    parser.add_argument("--size", choices=["tiny", "full"], default="tiny")
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--phones", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--voice_seconds", type=float, default=7.0)
    parser.add_argument("--g2p_tokens", type=int, default=100)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    work = Path(tempfile.mkdtemp(prefix="mega-bench-"))
    root = Path(args.model_path) if args.model_path else write_random_mega(work / "model", size=args.size)
    wav, npy = write_random_voice(work / "voice", seconds=args.voice_seconds)
    engine = MegaEngine.load(root, llm_device="cpu", detokenizer_device="cpu", torch_dtype="float32")
    await engine.start()
    rows = _Rows()
    start = time.perf_counter()
    await engine.add_voice("v", wav.read_bytes(), latent=npy.read_bytes())
    rows["voice alignment (once per voice) s"] = time.perf_counter() - start
    voice = await engine._resolve_voice(VoiceParams(name="v"))

    start = time.perf_counter()
    request = engine.vocab.prompt(engine.tokenizer.encode("<BOT>Hello there, this is a benchmark.<BOS>").ids)
    from fasttts.backends.base import GenerationRequest
    from fasttts.models.megatts3.g2p import PhoneConstraint

    class Fixed(PhoneConstraint):  # exactly --g2p_tokens phones: the EOS is held back
        def allowed(self, generated):
            lo, hi = self._ranges[0]
            return ((lo, hi),)

    gen = GenerationRequest(prompt_ids=request, max_tokens=args.g2p_tokens, temperature=0.0, top_k=1, constraint=Fixed(engine.vocab))
    n_tok = len([t async for t in engine.backend.generate(gen)])
    rows[f"g2p {n_tok} tokens s"] = time.perf_counter() - start

    n = args.phones
    frames = int(args.seconds * 100) // 8 * 8
    phones = [145] + [101 + (i % 40) for i in range(n - 1)]
    tones = [3] * n
    dur = torch.full((n,), frames // n)
    dur[-1] += frames - int(dur.sum())
    _, rows[f"duration LM {n} phones s"] = _timed(engine.parts.duration.predict, voice.prompt_state, torch.tensor([phones]), torch.tensor([tones]))
    inputs = dit_inputs(voice.phones, voice.tones, voice.mel2ph, phones, tones, dur, torch.from_numpy(voice.latent), 4)
    latent_frames = inputs[3].shape[1]
    for c in args.concurrency:
        items = [DiTItem(*inputs, steps=args.steps, text_weight=1.6, speaker_weight=2.5, generator=torch.Generator().manual_seed(i)) for i in range(c)]
        outs, t = _timed(sample_batch, engine.parts.dit, items)
        rows[f"DiT {c} request(s) x {latent_frames} frames, {args.steps} steps s"] = t
        rows[f"DiT {c} request(s): per step s"] = t / args.steps
        rows[f"DiT {c} request(s): 32 steps (per step x 32) s"] = t / args.steps * 32
    wav_out, rows["WaveVAE decode s"] = _timed(decode_audio, engine.parts.wavvae, outs[0], torch.from_numpy(voice.latent))
    audio_s = len(wav_out) / 24000
    rows["audio of the segment s"] = audio_s
    await engine.shutdown()
    out = Path(__file__).parent / "results" / "mega.jsonl"
    out.parent.mkdir(exist_ok=True)
    with out.open("a") as f:
        f.write(
            json.dumps(
                {
                    "machine": machine(),
                    "commit": commit(),
                    "size": args.size if not args.model_path else "release",
                    "tokenizer": tokenizer(root),
                    "steps": args.steps,
                    **rows,
                }
            )
            + "\n"
        )


if __name__ == "__main__":
    asyncio.run(main())
