"""``fasttts serve`` / ``python server.py``: command-line flags → Settings → uvicorn.

The flags are generated from :class:`fasttts.config.Settings` by :func:`fasttts.flags.add_settings_flags`
(same names as the server guide, same defaults, choices from the field types), so the CLI can never
drift from the settings. A flag not given leaves the value to the environment (``FASTTTS_*``),
``.env``, then the default.
"""

from __future__ import annotations

import argparse

from fasttts.config import Settings
from fasttts.flags import add_settings_flags, settings_from_args

SERVER_FLAGS = (
    # the server guide's table, in its order
    "model_path", "backend", "snac_path", "role_dir", "api_key", "llm_device", "tokenizer_device", "detokenizer_device",
    "wav2vec_attn_implementation", "llm_attn_implementation", "max_length", "llm_gpu_memory_utilization", "torch_dtype",
    "cache_implementation", "seed", "batch_size", "llm_batch_size", "wait_timeout", "host", "port",
    # ours
    "lang", "model_name", "open_list_routes", "fix_voice", "max_concurrency", "cors_origins", "max_input_chars", "max_upload_bytes",
    "max_json_bytes", "max_job_chars", "max_reference_seconds", "allow_private_urls", "fetch_deadline_s", "webhook_deadline_s",
    "openai_voice_map", "data_dir", "database_url", "broker_url",
    "s3_bucket", "s3_prefix", "s3_endpoint_url", "s3_region", "job_route_min_chars", "job_wait_timeout_s", "job_result_ttl_s",
    "auto_migrate", "job_queue", "segment_lease_s", "job_batch_size", "job_max_attempts", "job_inprocess_concurrency",
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fasttts serve", description="Run the FastTTS HTTP server (web page at /, API docs at /docs).")
    add_settings_flags(parser, SERVER_FLAGS)
    parser.add_argument("--log_level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log_format", default="auto", choices=["auto", "json", "text"], help="auto: text on a terminal, JSON lines otherwise")
    return parser


def parse_settings(argv: list[str] | None) -> tuple[Settings, argparse.Namespace]:
    args = build_parser().parse_args(argv)
    return settings_from_args(args), args


MALLOC_ARENAS = 2
"""glibc malloc arenas the server process may use (glibc's default is 8 per core)."""


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas, before the server starts its threads. Each thread otherwise gets
    an arena of its own, and the server's thread pools (Starlette's, asyncio's, the engine's and
    the codecs') spread the short-lived audio buffers of every request over many arenas that each
    keep their freed pages: resident memory crept up over thousands of requests (issue #16). No-op
    (False) where the C library is not glibc."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_arena_max = -8  # glibc's malloc.h
    return bool(libc.mallopt(m_arena_max, arenas))


def serve(argv: list[str] | None = None) -> int:
    """Entry point of ``fasttts serve`` and ``python server.py``."""
    import uvicorn

    from api.app import create_app
    from api.logging import configure_logging

    settings, args = parse_settings(argv)
    configure_logging(args.log_level, args.log_format)
    limit_malloc_arenas()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None, access_log=False, timeout_graceful_shutdown=10)
    return 0
