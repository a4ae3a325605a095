"""What every benchmark row is stamped with: the machine it ran on and the commit it measured."""

from __future__ import annotations

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


def append_rows(name: str, rows: list[dict]) -> None:
    """Append ``rows`` as JSON lines to bench/results/NAME.jsonl (the record every script keeps)."""
    import json

    out = Path(__file__).parent / "results" / f"{name}.jsonl"
    out.parent.mkdir(exist_ok=True)
    with out.open("a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
