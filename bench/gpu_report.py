"""The figures of one scripts/gpu_check.sh run, as JSON and Markdown in its output folder.

    python bench/gpu_report.py OUT_DIR    # reads OUT_DIR/steps.jsonl and OUT_DIR/http.jsonl

writes ``OUT_DIR/report.json`` (steps with status and seconds, every bench row) and
``OUT_DIR/report.md`` (the same as two tables, ready to paste into BENCHMARKS.md).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def cell(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def main(out: Path) -> None:
    steps, bench = rows(out / "steps.jsonl"), rows(out / "http.jsonl")
    (out / "report.json").write_text(json.dumps({"steps": steps, "bench": bench}, indent=1))
    lines = ["# GPU check", "", f"machine: {bench[0]['machine'] if bench else '?'}  commit: {bench[0]['commit'] if bench else '?'}", "",
             "| step | status | seconds |", "|---|---|---:|"]  # fmt: skip
    lines += [f"| {s['step']} | {s['status']} | {s['seconds']} |" for s in steps]
    cols = ["backend", "text", "stream", "concurrency", "wall_s", "audio_s", "rtf", "ttfa_p50", "ttfa_p95", "tokens_per_s", "peak_rss_mb"]
    lines += ["", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in cols) + " |" for r in bench]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    print((out / "report.md").read_text())


if __name__ == "__main__":
    main(Path(sys.argv[1]))
