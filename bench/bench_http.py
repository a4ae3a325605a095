"""HTTP benchmark: drive a running TTS server (ours or any OpenAI-compatible one) with N
concurrent clients and report what users feel.

    # start our server on a model and benchmark it
    python bench/bench_http.py --model_path /tmp/spark-full --backend torch --concurrency 1 4 8 16 32
    # the same workload against any OpenAI-compatible server, side by side
    python bench/bench_http.py --url http://127.0.0.1:8000 --url http://127.0.0.1:9000 --voice alloy

For each server, text (short, long), mode (full, stream) and concurrency N it sends N requests to
``POST /v1/audio/speech`` (``response_format=pcm``: 16-bit mono) at once and prints: aggregate
real-time factor (wall time ÷ audio seconds; < 1 is faster than real time), time to first audio
byte p50/p95, audio tokens/s (audio seconds × ``--token_rate``, Spark's 50 semantic tokens per
second by default), ``GET /health`` latency while the run is in flight (p99/max: is the event loop
free?) and, for a server this script started, its peak resident memory.
Rows are appended to bench/results/http.jsonl (or ``--results``) with machine and commit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from bench_engine import TEXTS
from stamp import commit, machine, tokenizer


class Server:
    """A ``fasttts serve`` child process on a free port, with its peak RSS sampled."""

    def __init__(self, args: argparse.Namespace) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        cmd = [sys.executable, "-m", "fasttts.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
               "--backend", args.backend,
               "--max_concurrency", str(4 * max(args.concurrency)), "--data_dir", args.data_dir]  # fmt: skip
        if args.model_path:
            cmd += ["--model_path", args.model_path]
        if args.codec_batch_size:
            cmd += ["--batch_size", str(args.codec_batch_size)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"
        self.peak_rss_mb = 0.0

    def sample_memory(self) -> None:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_rss_mb = int(line.split()[1]) / 1024
        except OSError:
            pass

    async def wait_ready(self, timeout: float = 900) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                try:
                    if (await client.get(f"{self.url}/ready")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if self.proc.poll() is not None:
                    raise RuntimeError("the server exited during start-up")
                await asyncio.sleep(1)
        raise TimeoutError("the server did not become ready")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


async def one(client: httpx.AsyncClient, url: str, args: argparse.Namespace, text: str, stream: bool, seed: int) -> tuple[float, float, int]:
    """One request; returns (audio seconds, seconds to first audio byte, sample rate)."""
    body = {"model": args.model, "input": text, "voice": args.voice, "response_format": "pcm", "max_tokens": args.max_tokens, "seed": seed}
    # "stream" is said explicitly: our server streams by default, as OpenAI does, while other servers
    # (FlashTTS) default to one complete file; the "full" rows measure one complete file
    body["stream_format"] = "audio"
    body["stream"] = stream
    t0 = time.perf_counter()
    first, size = None, 0
    async with client.stream("POST", f"{url}/v1/audio/speech", json=body, headers=args.headers) as r:
        r.raise_for_status()
        rate = int(r.headers.get("X-Sample-Rate", args.sample_rate))
        async for chunk in r.aiter_bytes():
            if chunk and first is None:
                first = time.perf_counter() - t0
            size += len(chunk)
    return size / 2 / rate, first or 0.0, rate


async def probe_health(client: httpx.AsyncClient, url: str, latencies: list[float], stop: asyncio.Event) -> None:
    """Time ``GET /health`` every 50 ms while a run is in flight: is the event loop responsive?"""
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            await client.get(f"{url}/health")
            latencies.append(time.perf_counter() - t0)
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.05)


async def run(args: argparse.Namespace) -> None:
    servers: list[Server] = []
    urls = list(args.url or [])
    if not urls:
        server = Server(args)
        servers.append(server)
        await server.wait_ready()
        urls.append(server.url)
    out_file = Path(args.results)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    carries = tokenizer(args.model_path)  # a remote --url's model is not known here: "unknown"
    print(f"machine: {machine()}  commit: {commit()}  model: {args.model_path}  tokenizer: {carries}")
    print(
        f"{'server':26} {'text':5} {'mode':6} {'N':>3} {'wall s':>7} {'audio s':>8} {'RTF':>6} {'TTFA p50':>9} {'p95':>7} {'tok/s':>7} {'peak MB':>8} {'health p99/max ms':>18}"
    )
    timeout = httpx.Timeout(args.timeout)
    async with httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(max_connections=256)) as client:
        for url in urls:
            server = next((s for s in servers if s.url == url), None)
            await one(client, url, args, TEXTS["short"], False, 0)  # warm-up
            for text_name in args.texts:
                for stream in [m == "stream" for m in args.modes]:
                    for n in args.concurrency:
                        latencies: list[float] = []
                        stop = asyncio.Event()
                        prober = asyncio.create_task(probe_health(client, url, latencies, stop))
                        t0 = time.perf_counter()
                        results = await asyncio.gather(*(one(client, url, args, TEXTS[text_name], stream, i) for i in range(n)))
                        wall = time.perf_counter() - t0
                        stop.set()
                        await prober
                        latencies.sort()
                        health_p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000 if latencies else float("nan")
                        health_max = latencies[-1] * 1000 if latencies else float("nan")
                        if server:
                            server.sample_memory()
                        audio = sum(r[0] for r in results)
                        firsts = sorted(r[1] for r in results)
                        p50, p95 = statistics.median(firsts), firsts[min(n - 1, int(0.95 * n))]
                        row = dict(machine=machine(), commit=commit(), server=url, model=args.model_path, tokenizer=carries, backend=args.backend,
                                   text=text_name, stream=stream, concurrency=n, wall_s=wall, audio_s=audio, rtf=wall / audio if audio else None,
                                   ttfa_p50=p50, ttfa_p95=p95, tokens_per_s=audio * args.token_rate / wall,
                                   peak_rss_mb=server.peak_rss_mb if server else None,
                                   health_p99_ms=health_p99, health_max_ms=health_max)  # fmt: skip
                        with out_file.open("a") as f:
                            f.write(json.dumps(row) + "\n")
                        mem = f"{server.peak_rss_mb:8.0f}" if server else f"{'-':>8}"
                        print(f"{url[-26:]:26} {text_name:5} {'stream' if stream else 'full':6} {n:>3} {wall:7.2f} {audio:8.2f} "
                              f"{row['rtf'] or float('nan'):6.3f} {p50:9.3f} {p95:7.3f} {row['tokens_per_s']:7.1f} {mem} {health_p99:8.1f}/{health_max:<8.1f}")  # fmt: skip
    for server in servers:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", action="append", help="benchmark this running server (repeat to compare several)")
    parser.add_argument("--model_path", default=None, help="without --url: start `fasttts serve` on this model")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--data_dir", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "fasttts-bench"))
    parser.add_argument(
        "--codec_batch_size",
        type=int,
        help="the started server's --batch_size (default: the server's, 1; "
        "batching the codec pays on a GPU, on a CPU it only makes every item wait for the whole batch)",
    )
    parser.add_argument("--model", default="tts-1")
    parser.add_argument("--voice", default="alloy")
    parser.add_argument("--api_key", default=None)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8, 16, 32])
    parser.add_argument("--texts", nargs="+", default=["short", "long"], choices=list(TEXTS))
    parser.add_argument("--modes", nargs="+", default=["full", "stream"], choices=["full", "stream"])
    parser.add_argument("--max_tokens", type=int, default=500, help="bounds random-weight models, which rarely stop by themselves")
    parser.add_argument("--sample_rate", type=int, default=24000, help="PCM rate when the server sends no X-Sample-Rate (OpenAI: 24000)")
    parser.add_argument("--token_rate", type=float, default=50.0, help="LLM audio tokens per second of audio (Spark: 50)")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--results", default=str(Path(__file__).parent / "results" / "http.jsonl"), help="JSON lines file the rows are appended to")
    args = parser.parse_args()
    args.headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
