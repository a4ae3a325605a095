"""What every benchmark row is stamped with: the machine it ran on, the commit it measured and, for
a model, which tokenizer it carries."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path


def machine() -> str:
    """CPU model and core count, plus the GPU when torch sees one."""
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), platform.processor()
    )
    try:
        import torch

        if torch.cuda.is_available():
            cpu += f", {torch.cuda.get_device_name()}"
    except ImportError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()}"


def commit() -> str:
    try:
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], text=True).strip()
    except Exception:
        return "unknown"


# The first special token of each release's tokenizer at its release id (Llama 3: 128,000 BPE ranks
# then <|begin_of_text|>; Qwen2.5: 151,643 then <|endoftext|>; fasttts/models/release_tokenizers.py).
# The random-model writer's small BPE puts them at 400.
_RELEASE_FIRST_SPECIAL = {"<|begin_of_text|>": 128000, "<|endoftext|>": 151643}


def tokenizer(model_dir: str | Path | None) -> str:
    """Which tokenizer the model's LLM carries, read from its ``tokenizer.json`` (the directory's
    own, ``LLM/``'s for Spark, ``g2p/``'s for MegaTTS3): ``release BPE (N tokens)`` when the
    release's special tokens sit at their release ids, ``small BPE (N tokens)`` for the random-model
    writer's test tokenizer (same vocabulary rows and grammar, but text becomes other token counts),
    ``none`` for a model without one (Piper), ``unknown`` without a local directory."""
    if model_dir is None or not Path(model_dir).is_dir():
        return "unknown"
    root = Path(model_dir)
    path = next((d / "tokenizer.json" for d in (root, root / "LLM", root / "g2p") if (d / "tokenizer.json").is_file()), None)
    if path is None:
        return "none"
    data = json.loads(path.read_text())
    added = {t["content"]: t["id"] for t in data.get("added_tokens", [])}
    count = len(set(data["model"]["vocab"].values()) | set(added.values()))
    kind = "release" if any(added.get(t) == i for t, i in _RELEASE_FIRST_SPECIAL.items()) else "small"
    return f"{kind} BPE ({count} tokens)"


def append_rows(name: str, rows: list[dict]) -> None:
    """Append ``rows`` as JSON lines to bench/results/NAME.jsonl (the record every script keeps)."""
    import json

    out = Path(__file__).parent / "results" / f"{name}.jsonl"
    out.parent.mkdir(exist_ok=True)
    with out.open("a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
