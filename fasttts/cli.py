"""The ``fasttts`` command: serve, worker, infer, random-model.

``serve`` and ``worker`` live in ``api/`` and ``workers/`` (imported only when called, so the
library never depends on them); ``infer`` and ``random-model`` use the library alone.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from fasttts.errors import FastTTSError, InvalidRequestError
from fasttts.flags import ENGINE_FLAGS, add_sampling_flags, add_settings_flags, sampling_from_args, settings_from_args
from fasttts.params import GENDERS, LEVELS, RESPONSE_FORMATS, SamplingParams, SplitParams, VoiceParams

if TYPE_CHECKING:
    import numpy as np


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"serve": _serve, "worker": _worker, "infer": _infer, "random-model": _random_model, "gguf": _gguf}
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in commands:
        print("usage: fasttts {serve,worker,infer,random-model} [options]\n"
              "  serve         run the HTTP server (fasttts serve --help)\n"
              "  worker        run a Celery job worker (fasttts worker --help)\n"
              "  infer         synthesize text to an audio file\n"
              "  random-model  write a random-weight model directory in the official layout\n"
              "  gguf          write the GGUF of an LLM directory for the llama-cpp backend")  # fmt: skip
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return commands[argv[0]](argv[1:]) or 0


def _serve(argv: list[str]) -> int:
    from api.main import serve

    return serve(argv) or 0


def _worker(argv: list[str]) -> int:
    from workers.main import worker

    return worker(argv) or 0


def infer_parser() -> argparse.ArgumentParser:
    """``fasttts infer``'s flags: the engine settings, the voice, one flag per sampling field
    (:func:`~fasttts.flags.add_sampling_flags`) and the text splitting."""
    parser = argparse.ArgumentParser(prog="fasttts infer", description="Synthesize text (or a .txt file) to an audio file.")
    add_settings_flags(parser, ENGINE_FLAGS)
    parser.add_argument("-i", "--input", required=True, help="text, or a path to a .txt file")
    parser.add_argument("-o", "--output", required=True, help="output file; the format comes from its extension")
    parser.add_argument("--name", default=None, help="voice name (default: the model's default voice)")
    parser.add_argument("--gender", choices=GENDERS, default=None)
    parser.add_argument("--pitch", choices=LEVELS, default=None)
    parser.add_argument("--speed", choices=LEVELS, default=None)
    parser.add_argument("--reference_audio", default=None, help="clone this voice (any common audio format)")
    parser.add_argument("--reference_text", default=None)
    parser.add_argument("--latent_file", default=None, help="MegaTTS3: the reference's .npy latent (with --reference_audio)")
    parser.add_argument("--multi_speaker", action="store_true", help="the text is a <role:name> script")
    add_sampling_flags(parser)
    parser.add_argument("--length_threshold", type=int, default=50)
    parser.add_argument("--window_size", type=int, default=50)
    return parser


def _infer(argv: list[str]) -> int:
    parser = infer_parser()
    args = parser.parse_args(argv)
    try:
        sampling = sampling_from_args(args)
    except InvalidRequestError as exc:
        parser.error(exc.message)
    fmt = Path(args.output).suffix.lstrip(".").lower()
    if fmt == "ogg":
        fmt = "opus"
    if fmt not in RESPONSE_FORMATS:
        parser.error(f"unsupported output extension .{fmt}; use one of {', '.join(RESPONSE_FORMATS)}")
    text_arg = Path(args.input)
    text = text_arg.read_text(encoding="utf-8") if text_arg.suffix == ".txt" and text_arg.exists() else args.input
    return asyncio.run(_run_infer(args, text, fmt, sampling))


async def _run_infer(args: argparse.Namespace, text: str, fmt: str, sampling: SamplingParams) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from fasttts.audio.encode import encode_audio
    from fasttts.services import build_engine

    split = SplitParams(args.length_threshold, args.window_size)
    engine = build_engine(settings_from_args(args))
    await engine.start()
    try:
        if args.reference_audio:
            voice = _voice(args, reference=await asyncio.to_thread(Path(args.reference_audio).read_bytes))
            if (state := await engine.pin_voice(voice)) is not None:  # MegaTTS3: align the reference once
                voice = type(voice)(state=state)
            segments = engine.segments(text, voice, split)
        elif args.multi_speaker:
            segments = engine.script_segments(text, split=split)
        else:
            segments = engine.segments(text, _voice(args), split)
        for i, segment in enumerate(segments):  # models whose first and final segments differ need their places
            segment.extra["position"] = (i, len(segments))
        pieces = []
        with Progress(
            TextColumn("[bold]synthesizing"), BarColumn(), TextColumn("{task.completed}/{task.total} segments"), TimeElapsedColumn(), disable=len(segments) < 2
        ) as progress:
            task = progress.add_task("tts", total=len(segments))
            for segment in segments:
                pieces.append(await engine.synthesize_segment(segment, sampling))
                progress.update(task, advance=1)
        audio = _join(pieces, engine.sample_rate, engine.segment_crossfade_s)
    except FastTTSError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    finally:
        await engine.shutdown()
    await asyncio.to_thread(Path(args.output).write_bytes, encode_audio(audio, engine.sample_rate, fmt))
    print(f"wrote {args.output}: {len(audio) / engine.sample_rate:.2f} s at {engine.sample_rate} Hz")
    return 0


def _voice(args: argparse.Namespace, reference: bytes | None = None) -> VoiceParams:
    if reference is not None:
        latent = Path(args.latent_file).read_bytes() if args.latent_file else None
        return VoiceParams(reference_audio=reference, reference_text=args.reference_text, pitch=args.pitch, speed=args.speed, reference_latent=latent)
    return VoiceParams(name=args.name, gender=args.gender, pitch=args.pitch, speed=args.speed)


def _join(pieces: list[np.ndarray], sample_rate: int, crossfade_s: float) -> np.ndarray:
    """Segments were synthesised one by one (for the progress bar); join them with the same
    crossfade the engine uses between segments."""
    import numpy as np

    from fasttts.audio.crossfade import SegmentJoiner

    joiner = SegmentJoiner(int(crossfade_s * sample_rate))
    out = [joiner.push(p) for p in pieces] + [joiner.flush()]
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def _random_model(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="fasttts random-model", description="Write a random-weight model in the official on-disk layout.")
    parser.add_argument("family", choices=["spark", "orpheus", "mega"])
    parser.add_argument("directory")
    parser.add_argument("--size", choices=["tiny", "full"], default="tiny")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gguf", nargs="*", metavar="QUANT", default=None, help="also write the LLM as GGUF for llama-cpp (F16, Q8_0, Q4_K_M; default Q4_K_M)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # which tokenizer was written, and why
    out = Path(args.directory)
    if args.family == "spark":
        from fasttts.models.spark.random_model import write_random_spark

        write_random_spark(out, size=args.size, seed=args.seed)
    elif args.family == "mega":
        from fasttts.models.megatts3.random_model import write_random_mega

        write_random_mega(out, size=args.size, seed=args.seed)
    else:
        from fasttts.models.orpheus.random_model import write_random_orpheus

        write_random_orpheus(out, size=args.size, seed=args.seed)
    print(f"wrote a random {args.size} {args.family} model to {out}")
    if args.gguf is not None:
        from fasttts.models.gguf import write_gguf

        llm_dir = {"spark": out / "LLM", "mega": out / "g2p"}.get(args.family, out)
        for quant in args.gguf or ["Q4_K_M"]:
            print(f"wrote {write_gguf(llm_dir, quant)}")
    return 0


def _gguf(argv: list[str]) -> int:
    from fasttts.models.gguf import main as gguf_main

    gguf_main(argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
