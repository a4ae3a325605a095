"""Imported by test workers before ``fasttts worker`` starts (``python -c "import worker_probe; ..."``).

``FASTTTS_TEST_PROBE=<file>``: every prompt the worker's Spark engine builds is appended to the
file as a JSON line (segment text, the voice's kind and global tokens, the prompt ids), and every
reference encode as ``{"event": "encode"}``, so a test sees what conditioned the worker's audio.
``FASTTTS_TEST_SLOW_LOAD_S=<s>``: the engine takes that much longer to load, as a big model does.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from fasttts import services

_build_engine = services.build_engine


def _write(path: str, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record | {"pid": os.getpid()}) + "\n")


def _probe(engine: Any, path: str) -> None:
    prompt, tokenize = engine._prompt, engine.tokenize

    def recording_prompt(text: str, voice: Any) -> Any:
        ids, grammar = prompt(text, voice)
        _write(path, {"event": "prompt", "text": text, "kind": voice.kind, "global_ids": list(voice.global_ids or ()), "prompt_ids": list(ids)})
        return ids, grammar

    async def recording_tokenize(audio: Any) -> Any:
        _write(path, {"event": "encode"})
        return await tokenize(audio)

    engine._prompt, engine.tokenize = recording_prompt, recording_tokenize


def build_engine(settings: Any) -> Any:
    time.sleep(float(os.environ.get("FASTTTS_TEST_SLOW_LOAD_S", "0")))
    engine = _build_engine(settings)
    if (path := os.environ.get("FASTTTS_TEST_PROBE")) and hasattr(engine, "_prompt"):
        _probe(engine, path)
    return engine


services.build_engine = build_engine


def read(path: str) -> list[dict[str, Any]]:
    """What a probed worker recorded."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
