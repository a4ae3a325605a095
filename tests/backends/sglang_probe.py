"""Run by tests/backends/test_sglang_api.py in a child process whose ``sys.path`` starts with SGLang's
package files (scripts/sglang_files.py): checks what the backend would pass against the real API.

Reads JSON from stdin: ``{"server_args": [{...}, ...], "sampling_params": [{...}, ...]}``; writes JSON
to stdout: SGLang's version, the error (or ``null``) of each ``ServerArgs(**kwargs)`` and of each
``SamplingParams(**p)`` sent through msgpack as SGLang's processes exchange it (JSON values only),
and, read from the source with ``ast`` (importing the engine needs SGLang's whole runtime), the
parameters of ``Engine.async_generate`` and ``TokenizerManager.abort_request`` and the methods of
``Engine``. Nothing here starts an engine or touches a GPU.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import json
import sys
from pathlib import Path

import msgspec
import sglang
from sglang.srt.sampling.sampling_params import SamplingParams
from sglang.srt.server_args import ServerArgs

SRT = Path(sglang.__file__).parent / "srt"


def error(fn) -> str | None:
    try:
        fn()
    except Exception as exc:  # what SGLang would raise at our call is the finding
        return f"{type(exc).__name__}: {exc}"
    return None


def methods(path: Path, cls: str) -> dict[str, list[str]]:
    """Each method of class ``cls`` in ``path``: its parameter names (``**`` marks a catch-all)."""
    tree = ast.parse(path.read_text())
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == cls)
    out = {}
    for fn in node.body:
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            a = fn.args
            names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs][1:]  # drop self
            out[fn.name] = names + (["**"] if a.kwarg else [])
    return out


def msgpack_round_trip(params: dict) -> None:
    msgspec.msgpack.decode(msgspec.msgpack.encode(SamplingParams(**params)), type=SamplingParams)


def main() -> None:
    asked = json.load(sys.stdin)
    engine = methods(SRT / "entrypoints" / "engine.py", "Engine")
    print(
        json.dumps(
            {
                "version": md.version("sglang"),
                "server_args_errors": [error(lambda a=a: ServerArgs(**a)) for a in asked["server_args"]],
                "sampling_params_errors": [error(lambda p=p: msgpack_round_trip(p)) for p in asked["sampling_params"]],
                "engine_methods": sorted(engine),
                "async_generate": engine["async_generate"],
                "abort_request": methods(SRT / "managers" / "tokenizer_manager.py", "TokenizerManager")["abort_request"],
            }
        )
    )


if __name__ == "__main__":
    main()
