"""Exit 0 when this checkout's requirements (``pyproject.toml``, with the extras named on the
command line) are already satisfied by the running Python, else 1 and the first unmet one.

``scripts/setup.sh`` calls it to skip ``pip install`` when nothing changed: pip itself would
spend a minute resolving against the index to conclude the same. Extras of dependencies
(``uvicorn[standard]``) are followed; ``import fasttts`` must also come from this checkout
(an editable install of it, or ``PYTHONPATH``), so a stale install elsewhere does not count.

    python3 scripts/requirements_met.py test llama-cpp mlx vllm-cpu
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import sys
from pathlib import Path

try:
    import tomllib
    from packaging.requirements import Requirement
except ImportError:  # Python 3.10 or no packaging: let pip decide
    sys.exit(1)

ROOT = Path(__file__).resolve().parent.parent


def unmet(req: Requirement, extra: str, seen: set[tuple[str, str]]) -> str | None:
    """The first requirement reachable from ``req`` (under ``extra``) that is not installed."""
    if req.marker is not None and not req.marker.evaluate({"extra": extra}):
        return None
    try:
        dist = md.distribution(req.name)
    except md.PackageNotFoundError:
        return f"{req} (not installed)"
    if not req.specifier.contains(dist.version, prereleases=True):
        return f"{req} (found {dist.version})"
    for sub in sorted(req.extras):
        if (req.name, sub) in seen:
            continue
        seen.add((req.name, sub))
        for line in dist.requires or []:
            found = unmet(Requirement(line), sub, seen)
            if found:
                return found
    return None


def main(extras: list[str]) -> int:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = [("", project["dependencies"])] + [(e, project["optional-dependencies"][e]) for e in extras]
    for extra, lines in groups:
        for line in lines:
            found = unmet(Requirement(line), extra, set())
            if found:
                print(f"unmet: {found}")
                return 1
    spec = importlib.util.find_spec("fasttts")
    if spec is None or spec.origin is None or ROOT not in Path(spec.origin).resolve().parents:
        print(f"unmet: fasttts is not importable from {ROOT}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
