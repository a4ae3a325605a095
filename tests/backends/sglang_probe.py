"""Run by tests/backends/test_sglang_api.py in a child process whose ``sys.path`` starts with SGLang's
package files (scripts/sglang_files.py): checks what the backend would pass against the real API.

Reads JSON from stdin: ``{"server_args": [{...}, ...], "sampling_params": [{...}, ...], "vocab_size": V}``;
writes JSON to stdout: SGLang's version, the error (or ``null``) of each ``ServerArgs(**kwargs)`` and
the scheduler settings it resolved, the error of each ``SamplingParams(**p)`` sent through msgpack as
SGLang's processes exchange it (JSON values only) and then verified against the vocabulary as the
scheduler does, with the sampling it resolved to; and, read from the source with ``ast`` (importing
the engine needs SGLang's whole runtime), the parameters of ``Engine.async_generate``,
``TokenizerManager.abort_request`` and ``CustomLogitProcessor.__call__``, the methods of ``Engine``,
the attributes ``Req.__init__`` sets and whether it hands processors the request as ``__req__``.
Nothing here starts an engine or touches a GPU.
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


RESOLVED = ("temperature", "top_k", "top_p", "max_new_tokens", "ignore_eos", "stop_token_ids", "sampling_seed")
"""What the sampler reads of a request's SamplingParams (after SGLang's own normalisation)."""


def resolved_params(params: dict, vocab_size: int) -> dict:
    """``SamplingParams(**params)`` after a msgpack round trip, verified; the fields it resolved to."""
    sp = msgspec.msgpack.decode(msgspec.msgpack.encode(SamplingParams(**params)), type=SamplingParams)
    sp.verify(vocab_size)
    return {name: getattr(sp, name) for name in RESOLVED}


def attempt(fn) -> tuple[str | None, object]:
    try:
        return None, fn()
    except Exception as exc:  # what SGLang would raise at our call is the finding
        return f"{type(exc).__name__}: {exc}", None


def req_init(path: Path) -> dict:
    """What ``Req.__init__`` sets on ``self``, and whether it adds ``__req__`` (itself) to a
    request's custom params, as custom processors read it."""
    tree = ast.parse(path.read_text())
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "Req")
    init = next(fn for fn in node.body if isinstance(fn, ast.FunctionDef) and fn.name == "__init__")
    targets = [t for n in ast.walk(init) if isinstance(n, ast.Assign | ast.AnnAssign) for t in (n.targets if isinstance(n, ast.Assign) else [n.target])]
    keys = [k.value for n in ast.walk(init) if isinstance(n, ast.Dict) for k in n.keys if isinstance(k, ast.Constant)]
    attributes = {t.attr for t in targets if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"}
    return {"attributes": sorted(attributes), "adds_req_to_custom_params": "__req__" in keys}


def server_settings(args: dict) -> dict:
    sa = ServerArgs(**args)
    return {name: getattr(sa, name) for name in ("disable_overlap_schedule", "enable_custom_logit_processor", "skip_tokenizer_init")}


def main() -> None:
    asked = json.load(sys.stdin)
    engine = methods(SRT / "entrypoints" / "engine.py", "Engine")
    server = [attempt(lambda a=a: server_settings(a)) for a in asked["server_args"]]
    sampling = [attempt(lambda p=p: resolved_params(p, asked["vocab_size"])) for p in asked["sampling_params"]]
    print(
        json.dumps(
            {
                "version": md.version("sglang"),
                "server_args_errors": [e for e, _ in server],
                "server_args": [r for _, r in server],
                "sampling_params_errors": [e for e, _ in sampling],
                "sampling_params": [r for _, r in sampling],
                "engine_methods": sorted(engine),
                "async_generate": engine["async_generate"],
                "abort_request": methods(SRT / "managers" / "tokenizer_manager.py", "TokenizerManager")["abort_request"],
                "processor_call": methods(SRT / "sampling" / "custom_logit_processor.py", "CustomLogitProcessor")["__call__"],
                "req": req_init(SRT / "managers" / "schedule_batch.py"),
            },
            default=sorted,  # stop_token_ids is a set
        )
    )


if __name__ == "__main__":
    main()
