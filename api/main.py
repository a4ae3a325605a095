"""``fasttts serve`` / ``python server.py``: command-line flags → Settings → uvicorn.

The flags are generated from :class:`fasttts.config.Settings` (same names as the server guide,
same defaults, choices from the field types), so the CLI can never drift from the settings. A
flag not given leaves the value to the environment (``FASTTTS_*``), ``.env``, then the default.
"""

from __future__ import annotations

import argparse
import types
import typing
from typing import Any, Literal

from pydantic.fields import FieldInfo

from fasttts.config import Settings

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
)  # fmt: skip

GUIDE_DEFAULT_TEXT = {"role_dir": "data/roles (MegaTTS3: data/mega-roles)", "model_path": "the bundled Piper voice"}


def _voice_map(text: str) -> dict[str, str]:
    """``alloy=female,echo=male`` → {"alloy": "female", "echo": "male"}."""
    pairs = [p.split("=", 1) for p in text.split(",") if p.strip()]
    if any(len(p) != 2 for p in pairs):
        raise argparse.ArgumentTypeError("expected OPENAI=OURS[,OPENAI=OURS...]")
    return {k.strip(): v.strip() for k, v in pairs}


def _add_flag(parser: argparse.ArgumentParser, name: str, field: FieldInfo) -> None:
    annotation = field.annotation
    args = (
        [a for a in typing.get_args(annotation) if a is not type(None)]
        if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union
        else [annotation]
    )
    base = args[0]
    default = GUIDE_DEFAULT_TEXT.get(name, field.default if field.default_factory is None else field.default_factory())  # type: ignore[call-arg]
    help_text = f"{field.description or ''} (default: {default})".strip()
    kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "help": help_text}
    if base is bool:
        parser.add_argument(f"--{name}", action=argparse.BooleanOptionalAction, **kwargs)
        return
    if typing.get_origin(base) is Literal:
        kwargs["choices"] = list(typing.get_args(base))
    elif typing.get_origin(base) is list:
        kwargs.update(nargs="+", metavar="ORIGIN")
    elif typing.get_origin(base) is dict:
        kwargs["type"] = _voice_map
    elif base in (int, float):
        kwargs["type"] = base
    parser.add_argument(f"--{name}", **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fasttts serve", description="Run the FastTTS HTTP server (web page at /, API docs at /docs).")
    for name in SERVER_FLAGS:
        _add_flag(parser, name, Settings.model_fields[name])
    parser.add_argument("--log_level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log_format", default="auto", choices=["auto", "json", "text"], help="auto: text on a terminal, JSON lines otherwise")
    return parser


def parse_settings(argv: list[str] | None) -> tuple[Settings, argparse.Namespace]:
    args = build_parser().parse_args(argv)
    given = {k: v for k, v in vars(args).items() if k in Settings.model_fields}
    return Settings(**given), args


def serve(argv: list[str] | None = None) -> int:
    """Entry point of ``fasttts serve`` and ``python server.py``."""
    import uvicorn

    from api.app import create_app
    from api.logging import configure_logging

    settings, args = parse_settings(argv)
    configure_logging(args.log_level, args.log_format)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None, access_log=False, timeout_graceful_shutdown=10)
    return 0
